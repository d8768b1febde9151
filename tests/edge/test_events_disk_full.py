"""Events on a full disk (issue #12, item 6): the camera keeps classifying, says once that events cannot be
written, keeps every line in the file whole, retries, and exits non-zero when lines were lost (with
`Restart=on-failure` a service comes back). A full disk is /dev/full or a real file under RLIMIT_FSIZE."""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from edgeclf.imageio import IMAGE_EXTENSIONS

from .conftest import REPO

pytestmark = pytest.mark.tflite_runtime


def _fsize_limit(limit: int):
    def preexec() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # write() then fails with EFBIG instead of killing
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))
    return preexec


def _camera(bundles, events: str, preexec=None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "edgeclf", "camera", str(bundles.path("b32-float32")), "--source",
                           str(bundles.images), "--events", events, "--every", "1"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120, preexec_fn=preexec)


def _frames(stderr: str) -> int:
    return int(next(ln for ln in stderr.splitlines() if " frames in " in ln).split()[0])


def test_dev_full_keeps_classifying_and_exits_non_zero(bundles) -> None:
    n_images = len([p for p in bundles.images.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS])
    out = _camera(bundles, "/dev/full")
    assert out.returncode == 1, out.stderr
    assert _frames(out.stderr) == n_images  # every image was classified
    said = [ln for ln in out.stderr.splitlines() if "events: cannot write" in ln]
    assert len(said) == 1 and "No space left on device" in said[0]
    assert out.stderr.strip().splitlines()[-1].startswith("error: --events /dev/full: ")


def test_file_size_limit_leaves_only_whole_lines(bundles, tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    out = _camera(bundles, str(events), _fsize_limit(2500))
    assert out.returncode == 1, out.stderr
    text = events.read_text()
    assert 0 < len(text) <= 2500 and text.endswith("\n")
    lines = [json.loads(line) for line in text.splitlines()]  # every line whole
    assert lines[0]["event"] == "start" and "File too large" in out.stderr
    assert _frames(out.stderr) >= 10


def test_writing_resumes_in_order_when_space_returns(tmp_path: Path) -> None:
    """A real file, a real EFBIG, then the limit lifted: the kept lines are written, in order, none lost."""
    events = tmp_path / "events.jsonl"
    script = textwrap.dedent(f"""
        import json, resource, signal, time
        from pathlib import Path
        from edgeclf.edge.events import EventWriter
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        ev = EventWriter(Path({str(events)!r}), retry=(0.05, 0.2))
        resource.setrlimit(resource.RLIMIT_FSIZE, (600, resource.RLIM_INFINITY))
        for i in range(20):
            ev.emit("frame", n=i, pad="x" * 40)
        assert ev.failing and ev.stats["error"], ev.stats
        resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
        time.sleep(0.3)
        for i in range(20, 25):
            ev.emit("frame", n=i, pad="x" * 40)
        ev.close()
        print(json.dumps(ev.stats))
    """)
    out = subprocess.run([sys.executable, "-c", script], cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    stats = json.loads(out.stdout.splitlines()[-1])
    assert stats["lost"] == 0 and stats["written"] == 25 and stats["write_errors"] >= 1 and stats["error"] is None
    assert [json.loads(line)["n"] for line in events.read_text().splitlines()] == list(range(25))
    assert "writable again" in out.stderr
