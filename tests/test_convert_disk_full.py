"""Disk full during `edgeclf convert` (issue #12, item 16): one line naming the folder and what ran out, exit
non-zero, nothing half-written (no temp folder, no bundle without its manifest), the bundles written before
stay whole. The full disk is real: a tmpfs with few inodes mounted in a private mount namespace (root), so the
free-space pre-check passes and a later create fails with ENOSPC; without root, a file size limit
(RLIMIT_FSIZE: EFBIG) on the conversion process."""

from __future__ import annotations

import os
import resource
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from edgeclf.bundle import load_bundle

from .conftest import REPO
from .runfixture import tiny_model, tiny_run, tiny_run_template  # noqa: F401  (fixtures)

pytestmark = pytest.mark.xdist_group("convert")

CONVERT = [sys.executable, "-m", "edgeclf", "convert"]
KINDS = ["--quantize", "int8", "--quantize", "float16", "--quantize", "dynamic", "--calibration", "10"]


def _in_full_fs(out: Path, script: str, inodes: int) -> subprocess.CompletedProcess:
    """`script` (sh) with a fresh tmpfs of `inodes` inodes mounted at `out`; `out`'s contents copied to
    `out`.after when done (the mount vanishes with the namespace)."""
    wrapped = (f'mount -t tmpfs -o size=64m,nr_inodes={inodes} none "{out}" || exit 90\n{script}\n'
               f'rc=$?; cp -a "{out}/." "{out}.after/"; exit $rc')
    (out.parent / f"{out.name}.after").mkdir()
    return subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", wrapped], cwd=REPO,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True, timeout=600)


def _complete_bundles(d: Path) -> dict[str, str]:
    return {b.name: load_bundle(b).manifest.sha256 for b in sorted(d.iterdir()) if b.is_dir()}


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("unshare"), reason="mounting a tmpfs needs root; "
                    "test_a_full_tmpdir_is_one_line covers a full disk without it")
def test_disk_full_is_one_line_and_leaves_nothing_half_written(tiny_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "bundles"
    out.mkdir()
    first = " ".join(CONVERT + [str(tiny_run), "--size", "24", "--out", str(out)])
    second = " ".join(CONVERT + [str(tiny_run), "--size", "24", "--out", str(out)] + KINDS)
    # After the first run, the filesystem keeps room for 3 more files or folders: the free-space check and the
    # write test pass, and the second run's bundles run out of inodes part-way (ENOSPC).
    room = f'used=$(df --output=iused "{out}" | tail -1); mount -o remount,nr_inodes=$((used + 3)) "{out}"'
    r = _in_full_fs(out, f"{first} >/dev/null 2>&1 || exit 91\n{room} || exit 92\n{second}", inodes=1000)
    assert r.returncode not in (90, 91, 92), r.stderr
    after = tmp_path / "bundles.after"
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("error")]  # progress lines come before it
    assert r.returncode == 1 and len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    assert lines[0] == (f"error: {out}: No space left on device while writing; free some space there (or write "
                        "somewhere else) and run the command again; what was written before is unchanged"), lines
    names = sorted(p.name for p in after.iterdir())
    assert not [n for n in names if n.startswith(".") and n != ".edgeclf.lock"], names  # no temp left behind
    bundles = _complete_bundles(after)  # every folder there is a whole, verified bundle
    assert "24-float32" in bundles  # the first run's bundle survived the failed second run


def _fsize_limit(limit: int):
    def preexec() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # write() then fails with EFBIG instead of killing
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))
    return preexec


def test_a_full_tmpdir_is_one_line(tiny_run: Path, tmp_path: Path) -> None:
    """The export writes a temporary SavedModel into $TMPDIR first: a full one there is TensorFlow's own error
    type (with the OS's text), made the same one line naming $TMPDIR."""
    out = tmp_path / "bundles"
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    r = subprocess.run(CONVERT + [str(tiny_run), "--size", "24", "--out", str(out)], cwd=REPO,
                       env={**os.environ, "PYTHONPATH": str(REPO), "TMPDIR": str(tmp)}, capture_output=True,
                       text=True, timeout=600, preexec_fn=_fsize_limit(2000))  # the SavedModel's variables are larger
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.returncode == 1 and len(lines) == 1, r.stderr
    assert lines[0].startswith(f"error: {tmp} (the temporary SavedModel; set TMPDIR"), lines
    assert "File too large while writing" in lines[0], lines
    assert not [p for p in out.iterdir() if p.is_dir() or p.name.startswith(".") and p.name != ".edgeclf.lock"]
    assert not list(tmp.glob("edgeclf-export-*"))  # the temp SavedModel is gone too
