"""A live run stops when asked even when the camera is faster than the model (#18).

On a slow CPU (a Pi Zero, or qemu armv7 in scripts/pi-check.sh) a frame is always waiting by the time the loop
asks for the next one. The feed handed it out before looking at `stop`, so a SIGTERM or a stop event never
ended the run. Here the model's slowness is a sleep between frames, so the case is the same on every machine.
"""

from __future__ import annotations

import threading
import time

import pytest

from edgeclf.edge.capture import LiveFeed

from .fakes import FakeCamera, FakeDevice

pytestmark = pytest.mark.tflite_runtime


def test_stop_wins_over_a_waiting_frame() -> None:
    device = FakeDevice([("frames", 100000, "green")], period=0.002)
    feed = LiveFeed(lambda: FakeCamera(device), lambda *a, **k: None)
    stop = threading.Event()
    feed.start(FakeCamera(device))
    try:
        assert feed.next(stop) is not None
        time.sleep(0.1)  # "invoke" on a slow CPU: the camera publishes new frames meanwhile
        assert feed.next(stop) is not None, "a frame was waiting"
        time.sleep(0.1)
        stop.set()
        assert len(device.delivered) > 2  # the camera kept delivering: a frame is in the slot now
        assert feed.next(stop) is None, "the feed handed out a waiting frame after stop was set"
    finally:
        feed.close()


def test_a_live_run_with_a_slow_model_ends_on_stop(bundles) -> None:
    """The real loop, interpreter and bundle; the model made slow by wrapping invoke (as qemu armv7 makes it)."""
    import io

    from edgeclf.edge.events import EventWriter
    from edgeclf.edge.loop import CameraConfig, run_camera
    from edgeclf.edge.model import Classifier

    device = FakeDevice([("frames", 100000, "green")], period=0.002)
    clf = Classifier.load(bundles.path("rgb32-float32"))
    fast = clf.invoke
    stop = threading.Event()
    invokes = {"before": 0, "after": 0}

    def slow_invoke() -> None:
        invokes["after" if stop.is_set() else "before"] += 1
        time.sleep(0.03)
        fast()

    clf.invoke = slow_invoke  # type: ignore[method-assign]
    result: dict = {}

    def run() -> None:
        result["summary"] = run_camera(bundles.path("rgb32-float32"), CameraConfig(source="fake"),
                                       events=EventWriter(stream=io.StringIO()),
                                       source_factory=lambda: FakeCamera(device), stop=stop, classifier=clf)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    deadline = time.monotonic() + 60
    while invokes["before"] < 10 and time.monotonic() < deadline:  # running, not merely started
        time.sleep(0.01)
    stop.set()
    t.join(timeout=60)  # an upper bound; the assertion below is on frames, not time
    assert not t.is_alive(), f"still running, {invokes['after']} frames classified after stop"
    # The frame being classified when stop came may finish; no new frame may start.
    assert invokes["after"] <= 1, f"{invokes['after']} frames were classified after stop was set"
    assert result["summary"]["stopped"] == "stop" and result["summary"]["frames"] >= 10
