"""The Pi's own software under emulation: scripts/pi-check.sh in Debian 12 arm64 and armhf userlands.

Each test runs the script for one userland (it builds it once, cached in $EDGECLF_PI_CACHE, default
/var/cache/edgeclf-pi): the edge suite, `edgeclf info --check`, `classify` and `camera` on a clip with the
answers compared to this machine's, and the manifest verdicts against the userland's real interpreter.
Emulation makes it slow (a cold build and a run take many minutes on 2 cores, docs/pi.md), so it runs
only when EDGECLF_PI_CHECK=1 (scripts/test.sh sets it when the userlands are cached); the skip says so.
When the machine cannot run foreign binaries (no root, binfmt_misc not registrable) the script exits 77
with one line saying why, and the test skips with that line.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "pi-check.sh"
CANNOT_RUN = 77


@pytest.mark.pi
@pytest.mark.parametrize("arch", ["arm64", "armhf"])
def test_pi_userland(arch: str) -> None:
    if os.environ.get("EDGECLF_PI_CHECK") != "1":
        pytest.skip(f"EDGECLF_PI_CHECK is not 1: the {arch} userland under qemu takes many minutes; "
                    f"run EDGECLF_PI_CHECK=1 pytest -m pi, or scripts/pi-check.sh {arch}")
    r = subprocess.run(["bash", str(SCRIPT), arch], cwd=REPO, capture_output=True, text=True, timeout=3600)
    out = r.stdout + r.stderr
    if r.returncode == CANNOT_RUN:
        pytest.skip(r.stderr.strip().splitlines()[-1])
    assert r.returncode == 0, out[-6000:]
    assert f"== pi-check: {arch}: passed" in out
    assert "DISAGREE" not in out and "answers agree with the desktop" in out


def test_missing_opencv_is_one_line_naming_the_fix(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    """An armv7 venv made without --system-site-packages has no cv2: the CLI says so in one line."""
    from tests.edge.fixtures import get_bundles

    bundles = str(get_bundles(tmp_path_factory).root)
    # sys.modules["cv2"] = None is how Python marks a module as absent: `import cv2` raises ImportError.
    code = ("import sys; sys.modules['cv2'] = None; from edgeclf.cli import main; "
            f"sys.argv = ['edgeclf', 'classify', {bundles + '/b32-int8'!r}, {bundles + '/images/photo.jpg'!r}]; main()")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=120,
                       env={**os.environ, "EDGECLF_CACHE": str(tmp_path)})
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.returncode != 0
    assert len(lines) == 1, r.stderr
    assert "cv2" in lines[0] and "python3-opencv" in lines[0] and "opencv-python-headless" in lines[0]


def test_where_it_cannot_run_it_says_why_in_one_line() -> None:
    """Without root (here: dropped to nobody) the script exits 77 with one line; the pi test skips on it."""
    cmd = ["bash", str(SCRIPT), "arm64"]
    if os.geteuid() == 0:
        cmd = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *cmd]
    r = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert r.returncode == CANNOT_RUN, r.stdout + r.stderr
    assert r.stderr.splitlines() == ["pi-check: cannot run here: needs root (debootstrap, chroot, binfmt_misc); "
                                     "run it as root"]
