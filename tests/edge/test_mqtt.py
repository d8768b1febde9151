"""camera --mqtt against a real broker (Debian's mosquitto, started here on a free port): state, changes,
summary, retained availability with a last will, Home Assistant discovery, a password that never shows,
a broker killed and restarted mid-run (messages resume, frames never stopped), and kill -9 -> `offline`."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from edgeclf.cli import app
from edgeclf.edge.events import EventWriter
from edgeclf.edge.loop import CameraConfig, run_camera
from edgeclf.edge.mqtt import PASSWORD_ENV, MqttConfig
from edgeclf.errors import UsageError

from .broker import Certs, Mosquitto, Subscriber
from .conftest import REPO, noise_clip, run_cli
from .fakes import FakeCamera, FakeDevice

PASSWORD = "pw-Very-Secret-42"
runner = CliRunner()


def _events(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


@pytest.fixture()
def broker(tmp_path: Path):
    b = Mosquitto(tmp_path, users={"cam": PASSWORD}).start()
    yield b
    b.stop()


def test_url_and_tls_options_are_checked_before_anything_starts(tmp_path: Path) -> None:
    c = MqttConfig.parse(f"mqtt://cam:{PASSWORD}@broker.lan/home/door", node_id="door cam!")
    assert (c.host, c.port, c.prefix, c.username, c.password, c.node_id) == \
        ("broker.lan", 1883, "home/door", "cam", PASSWORD, "door_cam")
    assert PASSWORD not in repr(c) and PASSWORD not in c.display and c.display == "mqtt://cam@broker.lan:1883/home/door"
    assert MqttConfig.parse("mqtts://cam@b:9999/x", env={PASSWORD_ENV: "from-env"}).password == "from-env"
    assert MqttConfig.parse("mqtts://b/x").port == 8883
    for bad, words in ((f"http://cam:{PASSWORD}@b/x", "expected mqtt://"),
                       (f"mqtt://cam:{PASSWORD}@b:notaport/x", "not a URL"),
                       (f"mqtt://cam:{PASSWORD}@b", "topic prefix"), ("mqtt://b/a/#", "topic prefix")):
        with pytest.raises(UsageError, match=words) as e:
            MqttConfig.parse(bad)
        assert PASSWORD not in str(e.value)
    with pytest.raises(UsageError, match="need an mqtts://"):
        MqttConfig.parse("mqtt://b/x", ca=tmp_path / "ca.pem")
    with pytest.raises(UsageError, match="no such file"):
        MqttConfig.parse("mqtts://b/x", ca=tmp_path / "ca.pem")
    with pytest.raises(UsageError, match="go together"):
        MqttConfig.parse("mqtts://b/x", cert=tmp_path / "c.pem")
    # From the CLI: one line, exit 2, before the (missing) bundle is even looked at; no password in it.
    r = runner.invoke(app, ["camera", str(tmp_path / "no-bundle"), "--mqtt", f"mqtt://cam:{PASSWORD}@b:99999/x"])
    assert r.exit_code == 2 and PASSWORD not in r.output
    assert len([ln for ln in r.stderr.splitlines() if ln.strip()]) == 1 and "--mqtt" in r.stderr


def test_state_changes_summary_discovery_and_availability(bundles, broker: Mosquitto, tmp_path: Path) -> None:
    sub = Subscriber(broker.port, ["cams/door/#", "homeassistant/#"], "cam", PASSWORD)
    mqtt = MqttConfig.parse(f"mqtt://cam:{PASSWORD}@127.0.0.1:{broker.port}/cams/door", node_id="door", interval=0)
    stream = io.StringIO()
    summary = run_camera(bundles.path("b32-float32"), CameraConfig(source=str(bundles.images), mqtt=mqtt),
                         events=EventWriter(stream=stream))
    events = _events(stream)
    sub.wait("cams/door/availability", lambda p: p == b"offline")
    sub.close()
    assert summary["mqtt"]["sent"] >= 5 and summary["mqtt"]["dropped"] == 0 and summary["mqtt"]["unsent"] == 0
    assert sub.on("cams/door/availability") == [b"online", b"offline"]
    changes = [e for e in events if e["event"] == "change"]
    got = sub.json("cams/door/change")
    assert [(c["label"], c["frame"]) for c in got] == [(e["label"], e["frame"]) for e in changes]
    assert got[1]["previous"] == changes[0]["label"]
    states = sub.json("cams/door/state")
    # interval 0: states on changes only; of the states queued within one 50 ms linger only the newest goes out
    assert states[-1]["label"] == changes[-1]["label"] and 1 <= len(states) <= len(changes)
    assert summary["mqtt"]["coalesced"] == len(changes) - len(states)
    (final,) = sub.json("cams/door/summary")
    assert final["frames"] == summary["frames"] > 0 and final["labels"] == summary["labels"]
    configs = {t: json.loads(p) for t, p, _ in sub.messages if t.startswith("homeassistant/")}
    assert set(configs) == {"homeassistant/sensor/door/label/config", "homeassistant/sensor/door/score/config"}
    label = configs["homeassistant/sensor/door/label/config"]
    assert label["unique_id"] == "door_label" and label["state_topic"] == "cams/door/state"
    assert label["availability_topic"] == "cams/door/availability"
    assert label["json_attributes_topic"] == "cams/door/state" and label["device"]["identifiers"] == ["door"]
    assert label["value_template"] == "{{ value_json.label }}"
    # What a client connecting later sees: the retained config, state, summary and `offline`.
    late = Subscriber(broker.port, ["cams/door/#", "homeassistant/#"], "cam", PASSWORD)
    late.wait("cams/door/summary")
    late.wait("homeassistant/sensor/door/score/config")
    assert late.on("cams/door/availability") == [b"offline"]
    assert json.loads(late.wait("cams/door/state"))["label"] == changes[-1]["label"]
    assert all(retain for _, _, retain in late.messages)
    late.close()
    assert PASSWORD not in stream.getvalue()


def test_wrong_password_is_an_event_and_the_camera_goes_on(bundles, broker: Mosquitto) -> None:
    mqtt = MqttConfig.parse(f"mqtt://cam:wrong-{PASSWORD}@127.0.0.1:{broker.port}/cams/x", interval=0)
    stream = io.StringIO()
    summary = run_camera(bundles.path("b32-float32"), CameraConfig(source=str(bundles.images), max_frames=0,
                                                                   mqtt=mqtt, realtime=False),
                         events=EventWriter(stream=stream))
    assert summary["frames"] > 0 and summary["mqtt"]["connects"] == 0 and summary["mqtt"]["sent"] == 0
    assert PASSWORD not in stream.getvalue() and PASSWORD not in json.dumps(summary)
    # At exit the camera gives the broker a few seconds: the refusal is seen, reported once, and not fatal.
    refused = [e for e in _events(stream) if e["event"] == "mqtt_refused"]
    assert len(refused) == 1 and refused[0]["broker"] == f"mqtt://cam@127.0.0.1:{broker.port}/cams/x"
    assert "authori" in refused[0]["reason"].lower() and summary["mqtt"]["unsent"] > 0


class _LiveRun:
    """run_camera in a thread on an endless fake camera, with --mqtt, --serve and a frame event every 10."""

    def __init__(self, bundle: Path, mqtt: MqttConfig):
        self.device = FakeDevice([("frames", 10**9, "red")], period=0.01)
        self.stream = io.StringIO()
        self.stop = threading.Event()
        self.result: dict[str, Any] = {}
        cfg = CameraConfig(source="fake", mqtt=mqtt, serve="127.0.0.1:0", every=10)
        self.thread = threading.Thread(target=lambda: self.result.update(summary=run_camera(
            bundle, cfg, events=EventWriter(stream=self.stream), source_factory=lambda: FakeCamera(self.device),
            stop=self.stop)), daemon=True)
        self.thread.start()

    def events(self, name: str) -> list[dict]:
        return [e for e in _events(self.stream) if e["event"] == name]

    def wait(self, name: str, n: int = 1, timeout: float = 60) -> list[dict]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.events(name)
            if len(got) >= n:
                return got
            time.sleep(0.05)
        raise AssertionError(f"fewer than {n} {name} events within {timeout} s")

    def close(self) -> dict:
        self.stop.set()
        self.thread.join(timeout=120)
        assert not self.thread.is_alive()
        return self.result["summary"]


def test_broker_restart_mid_run_messages_resume_frames_never_stop(bundles, broker: Mosquitto) -> None:
    mqtt = replace(MqttConfig.parse(f"mqtt://cam@127.0.0.1:{broker.port}/cams/yard", interval=0.02,
                                    env={PASSWORD_ENV: PASSWORD}), max_queue=20, reconnect=(1, 1))
    run = _LiveRun(bundles.path("b32-float32"), mqtt)
    try:
        sub = Subscriber(broker.port, ["cams/yard/state"], "cam", PASSWORD)
        sub.wait("cams/yard/state")
        sub.close()
        broker.stop()
        run.wait("mqtt_disconnected")
        before = len(run.events("frame"))
        time.sleep(2.0)  # the broker is away: frames go on, state messages queue up and the oldest are dropped
        assert len(run.events("frame")) >= before + 3
        url = run.wait("serving")[0]["url"]
        with urllib.request.urlopen(url + "status", timeout=10) as r:
            status = json.loads(r.read())
        assert status["mqtt"]["connected"] is False and status["mqtt"]["dropped"] > 0
        assert status["mqtt"]["queued"] <= 20
        broker.start()
        (_, again) = run.wait("mqtt_connected", 2)
        assert again["reconnect"] is True
        sub = Subscriber(broker.port, ["cams/yard/state", "cams/yard/availability"], "cam", PASSWORD)
        sub.wait("cams/yard/availability", lambda p: p == b"online")  # said again on the new connection
        first = json.loads(sub.wait("cams/yard/state"))
        later = json.loads(sub.wait("cams/yard/state", lambda p: json.loads(p)["frame"] > first["frame"] + 5))
        assert later["frame"] > first["frame"]
        with urllib.request.urlopen(url + "metrics", timeout=10) as r:
            metrics = r.read().decode()
        with urllib.request.urlopen(url + "status", timeout=10) as r:
            status_text = r.read().decode()
    finally:
        summary = run.close()
    sub.wait("cams/yard/availability", lambda p: p == b"offline")
    sub.close()
    assert summary["mqtt"]["reconnects"] >= 1 and summary["mqtt"]["dropped"] > 0
    assert "edgeclf_mqtt_reconnects_total 1" in metrics or "edgeclf_mqtt_reconnects_total 2" in metrics
    for text in (run.stream.getvalue(), metrics, status_text, json.dumps(summary)):
        assert PASSWORD not in text


def test_last_will_says_offline_when_the_camera_is_killed(bundles, broker: Mosquitto, tmp_path: Path) -> None:
    clip = noise_clip(tmp_path / "slow.mp4", 40, 2, seed=1)  # 20 s at its own pace (--realtime)
    sub = Subscriber(broker.port, ["cams/gate/availability", "cams/gate/state"], "cam", PASSWORD)
    env = {**os.environ, "PYTHONPATH": str(REPO), PASSWORD_ENV: PASSWORD}
    proc = subprocess.Popen([sys.executable, "-m", "edgeclf", "camera", str(bundles.path("b32-int8")), "--source",
                             str(clip), "--realtime", "--mqtt", f"mqtt://cam@127.0.0.1:{broker.port}/cams/gate",
                             "--mqtt-interval", "0.2"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=REPO)
    try:
        sub.wait("cams/gate/availability", lambda p: p == b"online", timeout=60)
        sub.wait("cams/gate/state")
        assert proc.poll() is None
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        sub.wait("cams/gate/availability", lambda p: p == b"offline", timeout=30)  # the broker's last will
    finally:
        if proc.poll() is None:
            proc.kill()
        out, err = proc.communicate(timeout=30)
        sub.close()
    assert sub.on("cams/gate/availability")[-1] == b"offline"
    late = Subscriber(broker.port, ["cams/gate/availability"], "cam", PASSWORD)
    assert late.wait("cams/gate/availability") == b"offline"  # retained
    late.close()
    assert PASSWORD.encode() not in out + err


def test_mqtts_with_a_ca_and_a_client_certificate(bundles, tmp_path: Path) -> None:
    certs = Certs(tmp_path)
    b = Mosquitto(tmp_path, tls=certs).start()
    try:
        sub = Subscriber(b.port, ["cams/tls/#"])  # the plain listener; the camera uses the TLS one
        url = f"mqtts://127.0.0.1:{b.tls_port}/cams/tls"
        r = run_cli("camera", str(bundles.path("b32-int8")), "--source", str(bundles.images), "--mqtt", url,
                    "--mqtt-ca", str(certs.ca), "--mqtt-cert", str(certs.client_cert), "--mqtt-key",
                    str(certs.client_key), "--mqtt-discovery", "off")
        assert r.returncode == 0, r.stderr
        assert json.loads(sub.wait("cams/tls/summary"))["frames"] > 0
        assert sub.wait("cams/tls/availability", lambda p: p == b"offline")
        events = [json.loads(line) for line in r.stdout.splitlines()]
        assert [e["broker"] for e in events if e["event"] == "mqtt_connected"] == [f"mqtts://127.0.0.1:{b.tls_port}/cams/tls"]
        sub.close()
        # Without the client certificate the broker refuses the TLS handshake: never fatal, nothing sent.
        r = run_cli("camera", str(bundles.path("b32-int8")), "--source", str(bundles.images), "--mqtt", url,
                    "--mqtt-ca", str(certs.ca), "--mqtt-discovery", "off")
        assert r.returncode == 0 and '"event": "mqtt_connected"' not in r.stdout
        # A CA file that is not PEM: one line, exit 2.
        (tmp_path / "junk.pem").write_text("not a certificate\n")
        r = run_cli("camera", str(bundles.path("b32-int8")), "--source", str(bundles.images), "--mqtt", url,
                    "--mqtt-ca", str(tmp_path / "junk.pem"))
        assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "--mqtt-ca" in r.stderr, r.stderr
    finally:
        b.stop()


def test_without_paho_mqtt_the_flag_is_refused_in_one_line(bundles) -> None:
    # A real process in which `import paho` fails, as on a Pi installed without the [mqtt] extra.
    code = "import sys; sys.modules['paho'] = None; from edgeclf.cli import main; sys.argv[0] = 'edgeclf'; main()"
    r = subprocess.run([sys.executable, "-c", code, "camera", str(bundles.path("b32-int8")), "--source",
                        str(bundles.images), "--mqtt", f"mqtt://cam:{PASSWORD}@127.0.0.1/x"],
                       capture_output=True, text=True, timeout=120, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert r.returncode == 2 and r.stderr.strip() == "error: --mqtt needs paho-mqtt 2.x: pip install 'edgeclf[mqtt]'"
    assert r.stdout == ""


def test_a_full_queue_drops_frames_never_the_hello_a_reconnect_put_first() -> None:
    """While the broker is away the bounded queue drops the oldest frames' messages; the availability and
    discovery messages a reconnect puts at the front stay, however many states arrive before they go out."""
    from types import SimpleNamespace

    from edgeclf.edge.mqtt import MqttPublisher

    events: list[tuple] = []
    cfg = replace(MqttConfig.parse("mqtt://127.0.0.1:1/cams/x", interval=0), max_queue=5)
    pub = MqttPublisher(cfg, lambda *a, **k: events.append(a))  # never started: no connection is made
    for i in range(5):
        pub.put("state", {"i": i}, retain=True)
    pub._on_connect(None, None, None, SimpleNamespace(is_failure=False), None)  # what paho calls on a connect
    for i in range(5, 12):
        pub.put("state", {"i": i}, retain=True)
    queued = list(pub._queue)
    assert [t.rsplit("/", 1)[-1] for t, _, _ in queued] == ["config", "config", "availability"] + ["state"] * 5
    assert queued[2][1] == b"online" and [json.loads(p)["i"] for _, p, _ in queued[3:]] == [7, 8, 9, 10, 11]
    assert pub.stats["dropped"] == 7 and events[0][0] == "mqtt_connected"
