"""`edgeclf camera` on real files through OpenCV: a video and an image folder from the shared data set."""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from edgeclf.cli import app
from edgeclf.edge.model import Classifier

from .conftest import error_lines, read_events, run_cli

# The whole edge suite runs again in the tflite-runtime 2.14 venv (scripts/test.sh).
pytestmark = pytest.mark.tflite_runtime

runner = CliRunner()


def _camera(*args: str) -> tuple[int, str]:
    r = runner.invoke(app, ["camera", *args])
    return r.exit_code, r.stderr


def _frame_events(events: list[dict]) -> list[dict]:
    return [e for e in events if e["event"] in ("change", "frame")]


@pytest.mark.parametrize("name", ["b48-int8", "b32-float32"])
def test_every_video_frame_is_classified(bundles, clip: Path, clip_frames, tmp_path: Path, name: str) -> None:
    events_file = tmp_path / "events.jsonl"
    code, err = _camera(str(bundles.path(name)), "--source", str(clip), "--every", "1", "--hysteresis", "0",
                        "--events", str(events_file), "--top-k", "2")
    assert code == 0, err
    events = read_events(events_file)
    assert events[0]["event"] == "start" and events[0]["labels"] == ["horses", "humans"]
    assert events[-1]["event"] == "summary"
    per_frame = _frame_events(events)
    assert [e["frame"] for e in per_frame] == list(range(1, len(clip_frames) + 1))  # each once, in order

    # The same frames, decoded by OpenCV and classified directly, give the same answers.
    clf = Classifier.load(bundles.path(name), threads=1)
    cap = cv2.VideoCapture(str(clip))
    for e in per_frame:
        ok, frame = cap.read()
        assert ok
        probs = clf(frame)
        assert e["label"] == clf.labels[int(np.argmax(probs))]
        assert e["score"] == pytest.approx(float(probs.max()), abs=1e-3)
        assert e["top"][0] == [e["label"], e["score"]] and len(e["top"]) == 2
        assert e["latency_ms"] >= 0
    changes = [e for e in per_frame if e["event"] == "change"]
    assert changes[0]["frame"] == 1 and changes[0]["previous"] is None
    assert all(a["label"] != b["label"] for a, b in zip(changes, changes[1:]))

    s = events[-1]
    assert s["frames"] == len(clip_frames) and s["dropped"] == 0 and s["reconnects"] == 0 and s["stopped"] == "end"
    assert set(s["stages_ms"]) >= {"capture", "preprocess", "invoke", "postprocess", "total"}
    assert all(v["p50"] <= v["p95"] for v in s["stages_ms"].values())
    assert s["peak_rss_mb"] > 10 and s["fps"] > 0
    assert f"{len(clip_frames)} frames in" in err and "p95 ms" in err and "invoke" in err


def test_folder_in_name_order_with_a_broken_file(bundles, image_folder: Path, tmp_path: Path) -> None:
    d = tmp_path / "imgs"
    d.mkdir()
    for f in image_folder.iterdir():
        (d / f.name).write_bytes(f.read_bytes())
    (d / "img05.png").write_bytes(b"<html>not an image</html>")
    events_file = tmp_path / "ev.jsonl"
    code, err = _camera(str(bundles.path("b32-int8")), "--source", str(d), "--every", "1",
                        "--events", str(events_file))
    assert code == 0, err
    events = read_events(events_file)
    names = [e["file"] for e in _frame_events(events)]
    assert names == sorted(f.name for f in d.iterdir() if f.name != "img05.png")
    skipped = [e for e in events if e["event"] == "skipped"]
    assert len(skipped) == 1 and skipped[0]["file"].endswith("img05.png") and "not an image" in skipped[0]["error"]
    assert events[-1]["frames"] == 9 and events[-1]["skipped"] == 1


def test_save_writes_an_annotated_video(bundles, clip: Path, clip_frames, tmp_path: Path) -> None:
    out = tmp_path / "out" / "annotated.mp4"
    code, err = _camera(str(bundles.path("b32-int8")), "--source", str(clip), "--save", str(out),
                        "--events", str(tmp_path / "ev.jsonl"))
    assert code == 0, err
    cap = cv2.VideoCapture(str(out))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == len(clip_frames)
    ok, first = cap.read()
    assert ok and first.shape == clip_frames[0].shape
    assert np.abs(first[:8].astype(int) - clip_frames[0][:8]).mean() > 20  # the status bar is drawn on it
    assert [p.name for p in out.parent.iterdir()] == ["annotated.mp4"]  # no temp file left


def test_on_change_runs_a_command_per_change(bundles, clip: Path, tmp_path: Path) -> None:
    marks = tmp_path / "marks"
    marks.mkdir()
    script = ("import os, pathlib; pathlib.Path(os.environ['MARKS'], os.environ['EDGECLF_FRAME'])"
              ".write_text(os.environ['EDGECLF_LABEL'] + ' ' + os.environ['EDGECLF_SCORE'])")
    events_file = tmp_path / "ev.jsonl"
    r = run_cli("camera", str(bundles.path("b48-int8")), "--source", str(clip), "--events", str(events_file),
                "--on-change", f"{sys.executable} -c \"{script}\"", env={"MARKS": str(marks)})
    assert r.returncode == 0, r.stderr
    changes = [e for e in read_events(events_file) if e["event"] == "change"]
    assert len(changes) >= 2
    got = {int(p.name): p.read_text().split() for p in marks.iterdir()}
    assert got == {e["frame"]: [e["label"], f"{e['score']:.4f}"] for e in changes}
    assert read_events(events_file)[-1]["on_change"] == {"started": len(changes), "skipped": 0, "failed": 0}


def test_smoothing_never_adds_changes(bundles, clip: Path, tmp_path: Path) -> None:
    counts = {}
    for smooth in ("1", "5"):
        f = tmp_path / f"ev{smooth}.jsonl"
        code, err = _camera(str(bundles.path("b32-int8")), "--source", str(clip), "--events", str(f),
                            "--smooth", smooth, "--smooth-mode", "majority", "--hysteresis", "0")
        assert code == 0, err
        counts[smooth] = sum(e["event"] == "change" for e in read_events(f))
    assert 1 <= counts["5"] <= counts["1"]


def test_display_without_a_display_runs_headless(bundles, clip: Path, clip_frames, tmp_path: Path,
                                                 monkeypatch) -> None:
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    code, err = _camera(str(bundles.path("b32-int8")), "--source", str(clip), "--display",
                        "--events", str(tmp_path / "ev.jsonl"))
    assert code == 0 and "--display: no DISPLAY or WAYLAND_DISPLAY" in err and "running headless" in err
    assert read_events(tmp_path / "ev.jsonl")[-1]["frames"] == len(clip_frames)


def test_realtime_reads_a_file_at_its_frame_rate(bundles, clip: Path, clip_frames, tmp_path: Path) -> None:
    f = tmp_path / "ev.jsonl"
    code, err = _camera(str(bundles.path("b32-int8")), "--source", str(clip), "--realtime", "--every", "1",
                        "--events", str(f))
    assert code == 0, err
    events = read_events(f)
    frames = [e["frame"] for e in _frame_events(events)]
    assert frames == sorted(set(frames)) and 1 <= len(frames) <= len(clip_frames)
    assert events[-1]["stopped"] == "end" and events[-1]["frames"] + events[-1]["dropped"] == len(clip_frames)


@pytest.mark.parametrize("source,says", [
    ("7", "camera 7: cannot be opened"),
    ("/dev/video9", "/dev/video9: no such camera device"),
    ("rtsp://127.0.0.1:9/stream", "rtsp://127.0.0.1:9/stream: cannot open the stream"),
    ("GARBAGE", "garbage.mp4: OpenCV cannot read it as a video"),
    ("MISSING", "nothing.mp4: no such file, folder or camera"),
])
def test_unusable_source_is_one_line_listing_sources(bundles, tmp_path: Path, source: str, says: str) -> None:
    if source == "GARBAGE":
        source = str(tmp_path / "garbage.mp4")
        (tmp_path / "garbage.mp4").write_bytes(np.random.default_rng(0).bytes(4000))
    elif source == "MISSING":
        source = str(tmp_path / "nothing.mp4")
    if source == "/dev/video9" and Path(source).exists():
        pytest.skip("this machine has a /dev/video9")
    r = run_cli("camera", str(bundles.path("b32-int8")), "--source", source, timeout=60)
    assert r.returncode == 1
    lines = error_lines(r.stderr)
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("error: ") and says in lines[0]
    assert "cameras here:" in lines[0] and "--source also takes" in lines[0]
    assert r.stdout == ""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="VmHWM: Linux's own peak of this program")
def test_peak_rss_is_the_cameras_own_not_its_parents(bundles, image_folder: Path, tmp_path: Path) -> None:
    """Started by a program that holds 300 MB (a demo, a supervisor in Python), the camera's summary says its own
    peak: ru_maxrss would count the parent's pages it was forked with."""
    import json
    import subprocess

    from .conftest import REPO

    events = tmp_path / "ev.jsonl"
    code = ("import subprocess, sys\n"
            "held = bytearray(300 << 20)\n"
            "for i in range(0, len(held), 4096): held[i] = 1\n"
            "sys.exit(subprocess.run(sys.argv[1:]).returncode)\n")
    r = subprocess.run([sys.executable, "-c", code, sys.executable, "-m", "edgeclf", "-q", "camera",
                        str(bundles.path("b32-int8")), "--source", str(image_folder), "--events", str(events)],
                       cwd=REPO, capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stderr[-2000:]
    summary = json.loads(events.read_text().splitlines()[-1])
    assert 10 < summary["peak_rss_mb"] < 200, summary["peak_rss_mb"]
