"""Camera faults (reliability cases 14-15) and the Pi camera module, with fake hardware behind the real
FrameSource interface and the real loop, interpreter and bundles."""

from __future__ import annotations

import io
import json
import sys
import threading
import time

import pytest

from edgeclf.edge.capture import LiveFeed
from edgeclf.edge.events import EventWriter
from edgeclf.edge.loop import CameraConfig, run_camera
from edgeclf.edge.model import Classifier
from edgeclf.edge.postprocess import SmoothConfig
from edgeclf.errors import SourceError

from .fakes import BGR, FakeCamera, FakeDevice, fake_picamera2_module

# The whole edge suite runs again in the tflite-runtime 2.14 venv (scripts/test.sh).
pytestmark = pytest.mark.tflite_runtime

FAST_RECOVERY = dict(stall_timeout=0.3, reconnect_min=0.05, reconnect_max=0.2)


def _run(bundle, factory, **config) -> tuple[dict, list[dict]]:
    stream = io.StringIO()
    cfg = CameraConfig(**{"source": "fake", "every": 1, "smooth": SmoothConfig(hysteresis=0.0), **config})
    summary = run_camera(bundle, cfg, events=EventWriter(stream=stream), source_factory=factory)
    return summary, [json.loads(line) for line in stream.getvalue().splitlines()]


def test_fail_disconnect_and_stall_recover_and_no_frame_is_used_twice(bundles) -> None:
    device = FakeDevice([("frames", 15, "red"), ("fail",), ("frames", 15, "green"), ("disconnect", 2),
                         ("frames", 15, "blue"), ("stall", 1.0), ("frames", 120, "red"), ("end",)])
    summary, events = _run(bundles.path("rgb32-float32"), lambda: FakeCamera(device), **FAST_RECOVERY)

    classified = [e for e in events if e["event"] in ("change", "frame")]
    ids = [int(e["file"][1:]) for e in classified]
    assert ids == sorted(set(ids)), "a frame was classified twice or out of order"
    assert len(device.stale) == 1 and device.stale[0] not in {e["file"] for e in classified}
    assert [e["label"] for e in events if e["event"] == "change"] == ["red", "green", "blue", "red"]
    assert int(classified[-1]["file"][1:]) > int(device.stale[0][1:])  # the loop went on after the stale read

    kinds = [e["event"] for e in events]
    assert kinds.count("source_error") == 2 and kinds.count("reconnect_failed") == 2
    assert kinds.count("stall") == 1 and kinds.count("reconnected") == 3
    assert summary["reconnects"] == 3 and summary["stalls"] == 1 and summary["source_errors"] == 4
    assert summary["stopped"] == "end" and events[-1]["event"] == "summary"
    assert summary["frames"] + summary["dropped"] == len(device.delivered) - len(device.stale)
    assert device.opens == 4 and device.failed_opens == 2  # first open + three reopens


def test_live_feed_hands_out_only_the_newest_frame() -> None:
    """A consumer slower than the camera gets fresh frames, never an old one, and drops are counted."""
    device = FakeDevice([("frames", 400, "red"), ("end",)], period=0.002)
    feed = LiveFeed(lambda: FakeCamera(device), lambda *a, **k: None, stall_timeout=0)
    feed.start()
    stop = threading.Event()
    got = []
    while True:
        cap = feed.next(stop)
        if cap is None:
            break
        got.append((cap.seq, int(cap.name[1:])))
        time.sleep(0.02)  # a model ten times slower than the camera
    feed.close()
    seqs = [g[0] for g in got]
    assert seqs == sorted(set(seqs))
    assert len(got) + feed.stats.dropped == len(device.delivered) == 400  # each frame used once or dropped
    assert len(got) < 400 and got[-1][1] == 400  # the last frame is the newest
    assert max(b[1] - a[1] for a, b in zip(got, got[1:])) > 1  # frames in between were skipped, not queued


def test_first_open_failure_reaches_the_caller() -> None:
    device = FakeDevice([("disconnect", 1)])
    device._pending_open_failures = 1
    feed = LiveFeed(lambda: FakeCamera(device), lambda *a, **k: None)
    with pytest.raises(SourceError, match="no such device"):
        feed.start()


def test_stop_event_ends_a_live_run_cleanly(bundles) -> None:
    device = FakeDevice([("frames", 100000, "green")], period=0.005)
    stop = threading.Event()
    stream = io.StringIO()
    result = {}
    # Loaded before the clock starts: on a slow CPU (a Pi Zero, or qemu in scripts/pi-check.sh) the first-load
    # probe alone can outlast the join below.
    clf = Classifier.load(bundles.path("rgb32-float32"))

    def run() -> None:
        result["summary"] = run_camera(bundles.path("rgb32-float32"), CameraConfig(source="fake"),
                                       events=EventWriter(stream=stream), source_factory=lambda: FakeCamera(device),
                                       stop=stop, classifier=clf)

    t = threading.Thread(target=run)
    t.start()
    time.sleep(0.5)
    stop.set()
    t.join(timeout=120)  # an upper bound, not a wait: under qemu emulation a clean stop took over 10 s
    assert not t.is_alive()
    assert result["summary"]["stopped"] == "stop" and result["summary"]["frames"] > 5
    assert json.loads(stream.getvalue().splitlines()[-1])["event"] == "summary"


@pytest.mark.parametrize("colour", ["red", "blue"])
def test_picamera_rgb888_is_bgr_in_memory(bundles, monkeypatch, colour: str) -> None:
    seen: list = []
    monkeypatch.setitem(sys.modules, "picamera2", fake_picamera2_module(BGR[colour], size_seen=seen))
    summary, events = _run(bundles.path("rgb32-float32"), None, source="picamera", max_frames=12)
    assert summary["frames"] == 12 and summary["stopped"] == "max-frames"
    labels = {e["label"] for e in events if e["event"] in ("change", "frame")}
    assert labels == {colour}  # a swapped channel order would read red as blue
    assert seen == [{"format": "RGB888", "size": (640, 480)}]


def test_picamera_with_a_size_and_a_missing_module(bundles, monkeypatch) -> None:
    seen: list = []
    monkeypatch.setitem(sys.modules, "picamera2", fake_picamera2_module(BGR["green"], size_seen=seen))
    stream = io.StringIO()
    run_camera(bundles.path("rgb32-float32"), CameraConfig(source="picamera", size="320x240", max_frames=3),
               events=EventWriter(stream=stream))
    assert seen[0]["size"] == (320, 240)
    with pytest.raises(SourceError, match="picamera:1: no such camera module .found: 0: imx708"):
        run_camera(bundles.path("rgb32-float32"), CameraConfig(source="picamera:1", max_frames=3),
                   events=EventWriter(stream=stream))
    monkeypatch.setitem(sys.modules, "picamera2", None)  # import fails as when it is not installed
    with pytest.raises(SourceError, match="picamera2 module is not installed.*cameras here"):
        run_camera(bundles.path("rgb32-float32"), CameraConfig(source="picamera", max_frames=3),
                   events=EventWriter(stream=stream))
