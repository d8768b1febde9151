"""Images with bytes after their end marker (issue #12, item 13): phone "motion photos" (a JPEG with a video
appended) and tools that append metadata write valid images that used to be refused as truncated.
`classify` and a `camera` folder now read them with the same answer as the clean file; a really truncated
file is still refused."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import pytest

from edgeclf.imageio import read_bgr

from .conftest import run_cli

pytestmark = pytest.mark.tflite_runtime

# What a Pixel/Samsung motion photo appends after the JPEG: an MP4 (ftyp box first), here a short stand-in.
TRAILER = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + bytes(range(256)) * 40 + b"\xff\xd8\xff\xe0 MotionPhoto_Data"


@pytest.fixture()
def files(bundles, tmp_path: Path) -> dict[str, Path]:
    img = cv2.imread(str(bundles.images / "horse02-0.png"), cv2.IMREAD_COLOR)
    d = tmp_path / "imgs"
    d.mkdir()
    out = {}
    for ext in ("jpg", "png"):
        clean = cv2.imencode(f".{ext}", img)[1].tobytes()
        for kind, data in (("clean", clean), ("trailing", clean + TRAILER), ("truncated", clean[: len(clean) * 2 // 3])):
            p = d / f"{kind}.{ext}"
            p.write_bytes(data)
            out[f"{kind}.{ext}"] = p
    return out


def test_read_bgr_accepts_trailing_bytes_and_refuses_truncation(files: dict[str, Path]) -> None:
    from edgeclf.errors import DataError

    for ext in ("jpg", "png"):
        assert (read_bgr(files[f"trailing.{ext}"]) == read_bgr(files[f"clean.{ext}"])).all()
        with pytest.raises(DataError, match="truncated"):
            read_bgr(files[f"truncated.{ext}"])


def test_classify_and_camera_folder_read_motion_photos(bundles, files: dict[str, Path], tmp_path: Path) -> None:
    bundle = str(bundles.path("b32-float32"))
    out = run_cli("classify", "--json", bundle, *(str(files[k]) for k in ("clean.jpg", "trailing.jpg",
                                                                            "clean.png", "trailing.png")))
    assert out.returncode == 0, out.stderr
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    assert rows[0]["probabilities"] == rows[1]["probabilities"] and rows[2]["probabilities"] == rows[3]["probabilities"]

    folder = tmp_path / "cam"
    folder.mkdir()
    for k in ("trailing.jpg", "trailing.png"):
        (folder / k).write_bytes(files[k].read_bytes())
    events = tmp_path / "events.jsonl"
    cam = run_cli("camera", bundle, "--source", str(folder), "--events", str(events), "--every", "1")
    assert cam.returncode == 0, cam.stderr
    evs = [json.loads(line) for line in events.read_text().splitlines()]
    assert not [e for e in evs if e["event"] == "skipped"] and evs[-1]["frames"] == 2
