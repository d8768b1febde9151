"""camera --mqtt under the events filter (--events-only / --events-ignore) and with `unknown_by`, against a
real mosquitto: the `change` messages are exactly the `change` events, an ignored label never reaches the
state topic, and a state or change that says `unknown` names the rule that said it (#14)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from edgeclf.edge.decide import EventsFilter
from edgeclf.edge.events import EventWriter
from edgeclf.edge.loop import CameraConfig, run_camera
from edgeclf.edge.mqtt import MqttConfig
from edgeclf.edge.postprocess import SmoothConfig

from .broker import Mosquitto, Subscriber


@pytest.fixture()
def broker(tmp_path: Path):
    b = Mosquitto(tmp_path).start()
    yield b
    b.stop()


def _run(bundles, broker: Mosquitto, prefix: str, flt: EventsFilter) -> tuple[list[dict], Subscriber]:
    """The fixture images with --unknown 0.95 (several frames say unknown by margin), a state every frame (of
    those queued within one 50 ms linger, the newest is sent)."""
    sub = Subscriber(broker.port, [f"{prefix}/#"])
    mqtt = MqttConfig.parse(f"mqtt://127.0.0.1:{broker.port}/{prefix}", discovery=None, interval=1e-9)
    stream = io.StringIO()
    cfg = CameraConfig(source=str(bundles.images), every=1, events_filter=flt, mqtt=mqtt,
                       smooth=SmoothConfig(hysteresis=0.0, unknown=0.95))
    summary = run_camera(bundles.path("b32-float32"), cfg, events=EventWriter(stream=stream))
    sub.wait(f"{prefix}/availability", lambda p: p == b"offline")
    sub.close()
    assert summary["mqtt"]["unsent"] == 0 and summary["mqtt"]["dropped"] == 0
    return [json.loads(line) for line in stream.getvalue().splitlines()], sub


def _key(m: dict) -> tuple:
    return m["label"], m["frame"], m.get("previous"), m.get("unknown_by")


def _newest_of(sent: list, queued: list) -> bool:
    """`sent` is `queued` with some states left out (the sender sends only the newest of the states queued within
    one linger), in order, ending with the last one."""
    it = iter(queued)
    return bool(sent) and sent[-1] == queued[-1] and all(any(x == y for y in it) for x in sent)


def test_mqtt_follows_the_events_filter_and_says_unknown_by(bundles, broker: Mosquitto) -> None:
    events, sub = _run(bundles, broker, "cams/all", EventsFilter())
    frames = [e for e in events if e["event"] in ("change", "frame")]
    unknown = [e for e in frames if e["label"] == "unknown"]
    assert unknown and all(e["unknown_by"] == "margin" for e in unknown)  # the run this test needs
    changes = [e for e in frames if e["event"] == "change"]
    assert [_key(m) for m in sub.json("cams/all/change")] == [_key(e) for e in changes]
    states = sub.json("cams/all/state")
    assert _newest_of([_key(s) for s in states], [_key({**e, "previous": None}) for e in frames])  # one per frame
    assert all(s["unknown_by"] == "margin" for s in states if s["label"] == "unknown")  # as the changes say
    assert not any("unknown_by" in s for s in states if s["label"] != "unknown")

    # --events-ignore unknown: no change into unknown, and the state topic never says unknown.
    events, sub = _run(bundles, broker, "cams/quiet", EventsFilter(ignore=("unknown",)))
    changes = [e for e in events if e["event"] == "change"]
    assert changes and all(e["label"] != "unknown" for e in changes)
    assert [_key(m) for m in sub.json("cams/quiet/change")] == [_key(e) for e in changes]
    states = sub.json("cams/quiet/state")
    shown = [e for e in events if e["event"] in ("change", "frame") and e["label"] != "unknown"]
    assert _newest_of([s["frame"] for s in states], [e["frame"] for e in shown])
    assert len(shown) < len(frames) and all(s["label"] != "unknown" for s in states)

    # --events-only horses: only changes into or out of horses, the same on both sides.
    events, sub = _run(bundles, broker, "cams/horses", EventsFilter(only=("horses",)))
    changes = [e for e in events if e["event"] == "change"]
    assert changes and all("horses" in (e["label"], e["previous"]) for e in changes)
    assert [_key(m) for m in sub.json("cams/horses/change")] == [_key(e) for e in changes]
    assert {s["label"] for s in sub.json("cams/horses/state")} <= {e["label"] for e in changes}
