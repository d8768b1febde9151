"""SIGTERM / Ctrl-C during `edgeclf camera` (reliability case 18), in a real child process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import pytest

from .conftest import REPO, write_clip

# The whole edge suite runs again in the tflite-runtime 2.14 venv (scripts/test.sh).
pytestmark = pytest.mark.tflite_runtime


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory, clip_frames) -> Path:
    """A 60 s clip at 10 FPS: --realtime keeps the run going until the signal."""
    return write_clip(tmp_path_factory.mktemp("long") / "long.mp4", clip_frames, 600)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_cleanly_with_a_summary(bundles, long_clip: Path, tmp_path: Path, sig: int) -> None:
    events_file = tmp_path / "events.jsonl"
    saved = tmp_path / "run.mp4"
    proc = subprocess.Popen(
        [sys.executable, "-m", "edgeclf", "camera", str(bundles.path("b32-int8")), "--source", str(long_clip),
         "--realtime", "--every", "1", "--events", str(events_file), "--save", str(saved)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if events_file.exists() and events_file.read_text().count('"event": "frame"') >= 5:
                break
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.05)
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    text = events_file.read_text()
    assert text.endswith("\n")
    events = [json.loads(line) for line in text.splitlines()]  # every line complete, the last included
    last = events[-1]
    assert last["event"] == "summary" and last["stopped"] == signal.Signals(sig).name
    frames = [e["frame"] for e in events if e["event"] in ("change", "frame")]
    assert 5 <= last["frames"] == len(frames) < 600
    assert f"{last['frames']} frames in" in err and f"[{signal.Signals(sig).name}]" in err
    cap = cv2.VideoCapture(str(saved))  # the annotated video was finished, not left half-written
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == last["frames"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["events.jsonl", "run.mp4"]
