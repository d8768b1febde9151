"""Pixel cap on video and stream frames (issue #12, item 14): a video or stream of huge frames is refused
from its size, before frames fill the rotating buffers (a 3.5 MB MJPEG of 12000x12000 frames took 2 GB).
Here real small videos written by cv2.VideoWriter and a real HTTP MJPEG stream, with the cap lowered by
--max-pixels."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from .conftest import error_lines, run_cli
from .mjpeg_server import MjpegServer

pytestmark = pytest.mark.tflite_runtime


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("big") / "big.avi"
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (640, 480))
    assert w.isOpened()
    for i in range(5):
        w.write(np.full((480, 640, 3), 40 * i, np.uint8))
    w.release()
    return path


def test_video_over_the_cap_is_refused_in_one_line(bundles, video: Path) -> None:
    out = run_cli("camera", str(bundles.path("b32-float32")), "--source", str(video), "--max-pixels", "100000")
    lines = error_lines(out.stderr)
    assert out.returncode == 1 and len(lines) == 1, out.stderr
    assert "640x480 frames = 307,200 pixels are over the cap of 100,000" in lines[0]


def test_video_under_the_cap_runs(bundles, video: Path, tmp_path: Path) -> None:
    ev = tmp_path / "ev.jsonl"
    out = run_cli("camera", str(bundles.path("b32-float32")), "--source", str(video), "--max-pixels", "307200",
                  "--events", str(ev))
    assert out.returncode == 0, out.stderr
    assert json.loads(ev.read_text().splitlines()[-1])["frames"] == 5


def test_stream_over_the_cap_is_refused(bundles) -> None:
    with MjpegServer([-1], size=(640, 480)) as cam:
        out = run_cli("camera", str(bundles.path("b32-float32")), "--source",
                      f"http://127.0.0.1:{cam.port}/video.mjpg", "--max-pixels", "100000", "--max-frames", "3")
    lines = error_lines(out.stderr)
    assert out.returncode == 1 and len(lines) == 1 and "over the cap of 100,000" in lines[0], out.stderr


def test_image_folder_and_classify_honour_the_cap(bundles, tmp_path: Path) -> None:
    out = run_cli("classify", "--max-pixels", "100", str(bundles.path("b32-float32")), str(bundles.images / "gray.png"))
    assert out.returncode == 1 and "over the cap of 100" in out.stderr, out.stderr
    ev = tmp_path / "ev.jsonl"
    cam = run_cli("camera", str(bundles.path("b32-float32")), "--source", str(bundles.images), "--max-pixels", "100",
                  "--events", str(ev))
    kinds = [json.loads(line)["event"] for line in ev.read_text().splitlines()]
    assert kinds.count("skipped") >= 5 and "change" not in kinds, cam.stderr
