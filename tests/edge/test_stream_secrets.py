"""Security item 2 (issue #12): a stream URL's password and token never reach events, /status or stderr,
and an events file is created owner-only."""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from edgeclf.safetext import redact

from .conftest import REPO
from .mjpeg_server import MjpegServer

pytestmark = pytest.mark.tflite_runtime

PASSWORD, TOKEN = "hunter2secret", "tok3n5ecret"


def _camera(*args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, "-m", "edgeclf", "camera", *args], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_event(path: Path, kind: str, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            for line in path.read_text().splitlines():
                if line.endswith("}") and json.loads(line)["event"] == kind:
                    return json.loads(line)
        time.sleep(0.05)
    raise AssertionError(f"no {kind!r} event in {timeout} s: {path.read_text() if path.exists() else 'no file'}")


def test_redact_hides_passwords_and_secret_parameters() -> None:
    assert redact("rtsp://admin:p@ss:w0rd@10.0.0.9:554/live") == "rtsp://admin:***@10.0.0.9:554/live"
    assert redact("http://cam/x.mjpg?user=a&token=t0k&sig=abc&api_key=k#f") == \
        "http://cam/x.mjpg?user=a&token=***&sig=***&api_key=***#f"
    assert redact("http://user@cam/") == "http://user@cam/" and redact("/dev/video0") == "/dev/video0"


def test_stream_credentials_never_written_through_a_real_reconnect(bundles, tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    # Connection 1 serves 15 frames then drops; 2 and 3 are refused; then the stream runs again.
    with MjpegServer([15, 0, 0]) as cam:
        url = f"http://viewer:{PASSWORD}@127.0.0.1:{cam.port}/video.mjpg?token={TOKEN}"
        proc = _camera(str(bundles.path("b32-float32")), "--source", url, "--events", str(events),
                       "--serve", "127.0.0.1:0", "--max-frames", "45", "--stall-timeout", "3",
                       "--reconnect-max", "0.5")
        try:
            serving = _wait_event(events, "serving")
            status = urllib.request.urlopen(serving["url"] + "status", timeout=10).read().decode()
            out, err = proc.communicate(timeout=120)
        finally:
            proc.kill()
    assert proc.returncode == 0, err
    text = events.read_text()
    kinds = {json.loads(line)["event"] for line in text.splitlines()}
    assert {"start", "source_error", "reconnect_failed", "reconnected", "summary"} <= kinds, text
    for where, shown in (("events", text), ("/status", status), ("stderr", err), ("stdout", out)):
        assert PASSWORD not in shown and TOKEN not in shown, f"{where} leaks a secret:\n{shown}"
    assert "viewer:***@127.0.0.1" in text and "token=***" in status
    assert stat.S_IMODE(events.stat().st_mode) == 0o600


def test_unreachable_stream_with_credentials_is_one_line_without_them(bundles, tmp_path: Path) -> None:
    with socket.socket() as s:  # a port that nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://viewer:{PASSWORD}@127.0.0.1:{port}/video?password={PASSWORD}"
    proc = _camera(str(bundles.path("b32-float32")), "--source", url, "--events", str(tmp_path / "ev.jsonl"))
    out, err = proc.communicate(timeout=120)
    assert proc.returncode != 0
    assert PASSWORD not in err and PASSWORD not in out, err
    assert "viewer:***@127.0.0.1" in err


def test_events_mode_can_be_asked_for(bundles, tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    proc = _camera(str(bundles.path("b32-float32")), "--source", str(bundles.images), "--events", str(events),
                   "--events-mode", "640")
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert stat.S_IMODE(events.stat().st_mode) == 0o640
