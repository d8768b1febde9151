"""`edgeclf camera --capture DIR` (issue #14 part 3): real videos through OpenCV, a real camera process."""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from edgeclf.bundle import read_manifest
from edgeclf.edge.keep import safe_dirname

from .conftest import REPO, run_cli, write_clip

pytestmark = pytest.mark.tflite_runtime


def _events(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]


def _kept(root: Path) -> list[Path]:
    return sorted(root.glob("*/*.jpg"))


def _capture(bundle: Path, source: Path, dest: Path, *extra: str, preexec=None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "edgeclf", "camera", str(bundle), "--source", str(source),
                           "--capture", str(dest), "--capture-interval", "0", "--capture-sample", "0", *extra],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=120, preexec_fn=preexec)


def test_kept_frames_have_sidecars_in_class_folders(bundles, clip: Path, tmp_path: Path) -> None:
    bundle = bundles.path("b32-float32")
    m = read_manifest(bundle)
    dest = tmp_path / "kept"
    # --threshold 1: no frame reaches it, every answer is "uncertain": every distinct frame is worth keeping
    out = _capture(bundle, clip, dest, "--threshold", "1")
    assert out.returncode == 0, out.stderr
    summary = _events(out.stdout)[-1]
    assert summary["event"] == "summary" and summary["frames"] == 24
    cap = summary["capture"]
    kept = _kept(dest)
    assert cap["kept"] == len(kept) == cap["reasons"]["unknown"] and len(kept) >= 8
    # A file is read faster than frames are written: what the bounded queue cannot hold is dropped, counted.
    assert cap["kept"] + cap["duplicates"] + cap["dropped"] == 24 and cap["error"] is None
    assert {p.parent.name for p in kept} <= set(m.labels)
    frames = set()
    for p in kept:
        side = json.loads(p.with_suffix(".json").read_text())
        assert side["reason"] == "unknown" and side["answer"] == "uncertain"
        assert side["bundle_sha256"] == m.sha256 and side["label"] == p.parent.name
        assert abs(sum(side["probs"].values()) - 1.0) < 1e-3 and side["score"] == max(side["probs"].values())
        assert side["time"].endswith("+0000") and f"-{side['frame']}-unknown.jpg" in p.name
        img = cv2.imread(str(p))
        assert img is not None and img.shape == (240, 320, 3)
        frames.add(side["frame"])
    assert len(frames) == len(kept)
    assert not list(dest.rglob(".*"))  # no temp files left behind


def test_near_duplicates_and_rate_limit(bundles, clip_frames: list[np.ndarray], tmp_path: Path) -> None:
    same = write_clip(tmp_path / "same.mp4", [clip_frames[0]], 20)  # a camera looking at a still scene
    out = _capture(bundles.path("b32-float32"), same, tmp_path / "a", "--threshold", "1")
    assert out.returncode == 0, out.stderr
    cap = _events(out.stdout)[-1]["capture"]
    assert cap["kept"] == 1 and cap["duplicates"] == 19 and len(_kept(tmp_path / "a")) == 1
    # A 60 s interval over a 24-frame file read at full speed: one kept frame, the rest rate-limited.
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-m", "edgeclf", "camera", str(bundles.path("b32-float32")), "--source",
                          str(same), "--capture", str(tmp_path / "b"), "--threshold", "1", "--capture-interval", "60",
                          "--capture-sample", "0"], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    cap = _events(out.stdout)[-1]["capture"]
    assert out.returncode == 0 and cap["kept"] == 1 and cap["rate_limited"] == 19 and cap["duplicates"] == 0


def test_confident_frames_are_not_kept_and_random_sample_is(bundles, clip: Path, tmp_path: Path) -> None:
    bundle = bundles.path("b32-float32")
    out = _capture(bundle, clip, tmp_path / "none", "--capture-below", "0")
    events = _events(out.stdout)
    cap = events[-1]["capture"]
    assert out.returncode == 0 and cap["reasons"]["unknown"] == cap["reasons"]["low"] == 0
    # Only label flips are kept: at most one per change event from one label to another (how many the fixture
    # model makes on this clip depends on its training; duplicates and a full queue can only lower the count).
    flips = sum(1 for e in events if e["event"] == "change" and e.get("previous") not in (None, ""))
    assert cap["kept"] == cap["reasons"]["flip"] <= flips and len(events) > 2
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-m", "edgeclf", "camera", str(bundle), "--source", str(clip), "--capture",
                          str(tmp_path / "sample"), "--capture-below", "0", "--capture-interval", "0",
                          "--capture-sample", "0.000001"], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    events = _events(out.stdout)
    cap = events[-1]["capture"]
    flips = sum(1 for e in events if e["event"] == "change" and e.get("previous") not in (None, ""))
    # Every frame is due for a sample; what the writer could not take in time is dropped (counted), not waited for.
    assert out.returncode == 0 and cap["reasons"]["sample"] + cap["reasons"]["flip"] == cap["kept"] >= 1, cap
    assert cap["reasons"]["sample"] >= 1 and cap["reasons"]["flip"] <= flips
    assert cap["kept"] + cap["duplicates"] + cap["dropped"] == 24


def test_disk_cap_evicts_oldest_first(bundles, clip: Path, tmp_path: Path) -> None:
    dest = tmp_path / "kept"
    cap_mb = 0.05
    out = _capture(bundles.path("b32-float32"), clip, dest, "--threshold", "1", "--capture-max-mb", str(cap_mb))
    assert out.returncode == 0, out.stderr
    cap = _events(out.stdout)[-1]["capture"]
    files = [p for p in dest.rglob("*") if p.is_file()]
    total = sum(p.stat().st_size for p in files)
    assert cap["evicted"] >= 1 and total == cap["bytes"] <= cap_mb * 1024**2
    assert sorted(p.with_suffix(".json") for p in files if p.suffix == ".jpg") == sorted(
        p for p in files if p.suffix == ".json")  # images leave with their sidecars
    # A second run counts what the first one left under the same cap.
    out = _capture(bundles.path("b32-float32"), clip, dest, "--threshold", "1", "--capture-max-mb", str(cap_mb))
    assert sum(p.stat().st_size for p in dest.rglob("*") if p.is_file()) <= cap_mb * 1024**2


def test_eviction_is_oldest_first(clip_frames: list[np.ndarray], tmp_path: Path) -> None:
    """The Keeper itself, one frame at a time (each written before the next is offered)."""
    import time

    from edgeclf.edge.keep import CaptureConfig, Keeper

    events: list[tuple] = []
    keeper = Keeper(CaptureConfig(tmp_path, interval=0, sample=0, max_mb=0.06), lambda *a, **k: events.append(a),
                    "0" * 64)
    probs = np.array([0.45, 0.55], np.float32)
    for seq, frame in enumerate(clip_frames[:12], 1):
        assert keeper.offer(frame, "humans", 1, probs, ("horses", "humans"), False, True, seq) == "low"
        deadline = time.monotonic() + 30
        while keeper.stats["kept"] < seq and time.monotonic() < deadline:
            time.sleep(0.01)
    keeper.close()
    left = sorted(int(p.name.split("-")[1]) for p in tmp_path.glob("humans/*.jpg"))
    assert keeper.stats["kept"] == 12 and keeper.stats["evicted"] == 12 - len(left) >= 1 and not events
    assert left == list(range(13 - len(left), 13))  # the newest frames stayed


def _fsize_limit(limit: int):
    def preexec() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # write() then fails with EFBIG instead of killing
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))
    return preexec


def test_write_failure_is_one_event_classifying_goes_on_exit_non_zero(bundles, clip: Path, tmp_path: Path) -> None:
    dest = tmp_path / "kept"
    out = _capture(bundles.path("b32-float32"), clip, dest, "--threshold", "1", preexec=_fsize_limit(2000))
    assert out.returncode == 1, out.stderr
    events = _events(out.stdout)
    errors = [e for e in events if e["event"] == "capture_error"]
    assert len(errors) == 1 and "File too large" in errors[0]["error"]
    assert events[-1]["frames"] == 24  # every frame was classified
    assert out.stderr.strip().splitlines()[-1].startswith(f"error: --capture {dest}: capturing stopped")
    assert not _kept(dest) and not list(dest.rglob(".*"))  # no half-written file, no temp file


def test_unwritable_capture_dir_is_refused_in_one_line(bundles, clip: Path, tmp_path: Path) -> None:
    out = run_cli("camera", str(bundles.path("b32-float32")), "--source", str(clip), "--capture", "/proc/edgeclf-kept")
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert out.stderr.strip().splitlines()[-1].startswith("error: --capture /proc/edgeclf-kept: ")
    (tmp_path / "file").write_text("x")
    out = run_cli("camera", str(bundles.path("b32-float32")), "--source", str(clip), "--capture", str(tmp_path / "file"))
    assert out.returncode == 2 and "is a file" in out.stderr


def test_labels_become_safe_folder_names() -> None:
    assert safe_dirname("horses") == "horses"
    assert safe_dirname("../etc") == "_.._etc"
    assert safe_dirname("a/b\\c\x1b[31m") == "a_b_c_[31m"
    assert safe_dirname("") == "_" and safe_dirname(".hidden") == "_.hidden"
