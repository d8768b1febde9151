"""Fixtures for the edge tests. Nothing here imports TensorFlow: this folder also runs in the
tflite-runtime 2.14 venv (see scripts/test.sh), on bundles built by the main venv."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from .fixtures import REPO, Bundles, get_bundles


@pytest.fixture(scope="session", autouse=True)
def _probe_cache(tmp_path_factory: pytest.TempPathFactory):
    """The first-load probe cache goes to a temp dir, not ~/.cache."""
    old = os.environ.get("EDGECLF_CACHE")
    os.environ["EDGECLF_CACHE"] = str(tmp_path_factory.mktemp("edgeclf-cache"))
    yield
    if old is None:
        os.environ.pop("EDGECLF_CACHE", None)
    else:
        os.environ["EDGECLF_CACHE"] = old


@pytest.fixture(scope="session")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> Bundles:
    return get_bundles(tmp_path_factory)


CLIP_FPS = 10


@pytest.fixture(scope="session")
def clip_frames(shared_data: Path) -> list[np.ndarray]:
    """12 horse then 12 human frames from the shared data set, 320x240 (non-square: the crop matters)."""
    frames = []
    for cls in ("horses", "humans"):
        for f in sorted((shared_data / cls).glob("*.png"))[:48:4]:
            frames.append(cv2.resize(cv2.imread(str(f), cv2.IMREAD_COLOR), (320, 240), interpolation=cv2.INTER_AREA))
    return frames


def write_clip(path: Path, frames: list[np.ndarray], count: int | None = None) -> Path:
    """A real mp4 (OpenCV, mp4v, CLIP_FPS) of `frames`, repeated in turn up to `count` frames."""
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), CLIP_FPS, (w, h))
    assert writer.isOpened()
    for i in range(count or len(frames)):
        writer.write(frames[i % len(frames)])
    writer.release()
    return path


def noise_clip(path: Path, frames: int, fps: float, seed: int = 0) -> Path:
    """A real 64x48 mp4 of random frames at `fps`: a source that lasts frames / fps seconds with --realtime."""
    rng = np.random.default_rng(seed)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (64, 48))
    assert writer.isOpened()
    for _ in range(frames):
        writer.write(rng.integers(0, 256, (48, 64, 3), np.uint8))
    writer.release()
    return path


@pytest.fixture(scope="session")
def clip(tmp_path_factory: pytest.TempPathFactory, clip_frames: list[np.ndarray]) -> Path:
    """A real mp4 (OpenCV, mp4v) of the clip frames."""
    path = write_clip(tmp_path_factory.mktemp("clip") / "clip.mp4", clip_frames)
    assert int(cv2.VideoCapture(str(path)).get(cv2.CAP_PROP_FRAME_COUNT)) == len(clip_frames)
    return path


@pytest.fixture(scope="session")
def image_folder(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> Path:
    """8 PNGs and 2 JPEGs from the shared data set, named so that their order is known."""
    d = tmp_path_factory.mktemp("folder")
    files = sorted((shared_data / "horses").glob("*.png"))[:5] + sorted((shared_data / "humans").glob("*.png"))[:5]
    for i, f in enumerate(files):
        img = cv2.imread(str(f), cv2.IMREAD_UNCHANGED)
        jpeg = i in (2, 7)
        cv2.imwrite(str(d / f"img{i:02d}.{'jpg' if jpeg else 'png'}"), img[:, :, :3] if jpeg else img)
    return d


def run_cli(*args: str, timeout: float = 120, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """`edgeclf ARGS` in a child process, as a user runs it."""
    full_env = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    return subprocess.run([sys.executable, "-m", "edgeclf", *args], capture_output=True, text=True, timeout=timeout,
                          env=full_env, cwd=REPO)


def read_events(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def error_lines(stderr: str) -> list[str]:
    """What a user sees on stderr, minus the interpreter's own INFO banner and our INFO log lines."""
    return [ln for ln in stderr.splitlines() if ln.strip() and not ln.startswith("INFO: ")
            and not ln.startswith("loaded ")]
