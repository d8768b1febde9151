"""camera --save (issue #12, item 7): the path is checked before the run (a folder, a read-only filesystem:
one line), the video is recorded in segments so that a SIGKILL loses at most the last one, and the temp file a
kill leaves behind is removed by the next recording to the same name. Real camera processes, real videos."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from .conftest import REPO, error_lines, run_cli

pytestmark = pytest.mark.tflite_runtime

FPS = 20


def _frames_in(path: Path) -> int:
    cap = cv2.VideoCapture(str(path))
    n = 0
    while cap.read()[0]:
        n += 1
    cap.release()
    return n


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """400 small frames at 20 fps: 20 s under --realtime, long enough to kill a run in the middle."""
    path = tmp_path_factory.mktemp("long") / "long.avi"
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), FPS, (64, 48))
    rng = np.random.default_rng(0)
    for i in range(400):
        w.write(np.full((48, 64, 3), (i * 7) % 256, np.uint8) + rng.integers(0, 20, (48, 64, 3), np.uint8))
    w.release()
    return path


def test_a_folder_as_save_is_one_line_before_the_run(bundles, clip: Path, tmp_path: Path) -> None:
    folder = tmp_path / "videos.mp4"
    folder.mkdir()
    r = run_cli("camera", str(bundles.path("b32-float32")), "--source", str(clip), "--save", str(folder))
    assert r.returncode != 0
    assert error_lines(r.stderr) == [f"error: --save {folder}: is a folder; give a video file name, e.g. "
                                     f"{folder / 'run.mp4'}"], r.stderr
    assert '"event": "start"' not in r.stdout  # refused before the run, not after classifying it


def test_a_read_only_filesystem_is_one_line_before_the_run(bundles, clip: Path, tmp_path: Path) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    target = ro / "missing" / "out.mp4"
    cmd = [sys.executable, "-m", "edgeclf", "camera", str(bundles.path("b32-float32")), "--source", str(clip),
           "--save", str(target)]
    if os.geteuid() == 0:  # a real read-only filesystem: a tmpfs mounted ro in a private mount namespace
        probe = subprocess.run(["unshare", "--mount", "--propagation", "private", "true"], capture_output=True,
                               text=True)
        if probe.returncode != 0:  # root without mount namespaces (a chroot, as in scripts/pi-check.sh)
            pytest.skip(f"cannot make a read-only filesystem here: {probe.stderr.strip()}")
        cmd = ["unshare", "--mount", "--propagation", "private", "sh", "-c",
               f'mount -t tmpfs -o ro,size=64k none "{ro}" && exec "$@"', "_", *cmd]
        why = "is on a read-only filesystem"
    else:  # without root: a folder this user cannot write
        ro.chmod(0o555)
        why = "is not writable by this user"
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=REPO,
                       env={**os.environ, "PYTHONPATH": str(REPO)})
    assert r.returncode != 0
    assert error_lines(r.stderr) == [f"error: --save {target}: {target.parent} cannot be created: {ro} {why}; "
                                     "pick a writable path"], r.stderr


def test_a_kill_loses_at_most_the_last_segment_and_its_temp_is_cleaned(bundles, long_clip: Path,
                                                                      tmp_path: Path) -> None:
    out = tmp_path / "rec" / "out.avi"
    cmd = [sys.executable, "-m", "edgeclf", "camera", str(bundles.path("b32-float32")), "--source", str(long_clip),
           "--realtime", "--save", str(out), "--save-segment", "1"]
    p = subprocess.Popen(cmd, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, text=True)
    second = out.with_name("out.001.avi")
    third = out.with_name(f".out.avi.{p.pid}.tmp.avi")  # the segment being written when the kill comes
    try:
        deadline = time.monotonic() + 300
        while not (second.exists() and third.exists()) and p.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert second.exists() and third.exists(), f"no third segment was started: {os.listdir(out.parent)}"
        os.kill(p.pid, signal.SIGKILL)
        p.wait(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
    # Every finished segment plays, each one second of video; the segment being written is a temp.
    assert _frames_in(out) == FPS and _frames_in(second) == FPS
    temps = [f for f in out.parent.iterdir() if f.name.startswith(".out.avi.")]
    assert len(temps) == 1 and temps[0].name == f".out.avi.{p.pid}.tmp.avi", sorted(os.listdir(out.parent))

    # The next recording to the same name removes the dead writer's temp and replaces the old parts.
    short = run_cli("camera", str(bundles.path("b32-float32")), "--source", str(long_clip), "--max-frames", "5",
                    "--save", str(out))
    assert short.returncode == 0, short.stderr
    assert sorted(f.name for f in out.parent.iterdir()) == ["out.avi"]
    assert _frames_in(out) == 5
    assert any("removed" in ln and temps[0].name in ln for ln in short.stderr.splitlines()), short.stderr
