from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path:
    """The shared horse-or-human training folder (read-only): $EDGECLF_SHARED_DATA or ../shared beside the repo."""
    env = os.environ.get("EDGECLF_SHARED_DATA")
    return Path(env) if env else REPO.parent / "shared" / "datasets" / "horse-or-human" / "train"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    d = shared_data_dir()
    if not d.is_dir():
        pytest.fail(f"shared data set missing at {d}; set EDGECLF_SHARED_DATA to the horse-or-human train folder")
    return d


def write_color_folders(root: Path, n_per_class: int = 12, size: int = 48, classes=("blue", "red"), seed: int = 0) -> Path:
    """Small solid-colour-ish images per class (noise added so that models must learn colour, not pixels)."""
    import cv2

    rng = np.random.default_rng(seed)
    colors = {"red": (0, 0, 220), "blue": (220, 0, 0), "green": (0, 200, 0)}
    for ci, name in enumerate(classes):
        d = root / name
        d.mkdir(parents=True, exist_ok=True)
        base = np.array(colors.get(name, (40 * ci, 255 - 40 * ci, 128)), np.float32)
        for i in range(n_per_class):
            img = np.clip(base + rng.normal(0, 25, (size, size, 3)), 0, 255).astype(np.uint8)
            cv2.imwrite(str(d / f"{name}{i // 3:02d}-{i % 3}.png"), img)
    return root


def kill_after_epoch(cmd: list[str], state_file: Path, epoch: int, cwd: Path, timeout: float = 900) -> int:
    """Start `edgeclf train` (`cmd`), SIGKILL it once `state_file` says `epoch` epochs are done, and return the
    epoch the state file holds after the kill (the caller asserts it landed where it meant)."""
    import json
    import os
    import shutil
    import signal
    import subprocess
    import tempfile
    import time

    scratch = tempfile.mkdtemp(prefix="edgeclf-killed-")  # its TMPDIR: a SIGKILL leaves TensorFlow's temp files
    p = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                         env={**os.environ, "TMPDIR": scratch})
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and p.poll() is None:
            try:
                if json.loads(state_file.read_text())["epoch"] >= epoch:
                    break
            except (FileNotFoundError, ValueError, KeyError):
                pass
            time.sleep(0.02)
        p.send_signal(signal.SIGKILL)
        p.wait(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
        shutil.rmtree(scratch, ignore_errors=True)
    return json.loads(state_file.read_text())["epoch"]
