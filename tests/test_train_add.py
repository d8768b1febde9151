"""The retraining loop (issue #14 part 3): frames kept by a real `edgeclf camera --capture` run, relabelled,
then `edgeclf train DATA --add DIR` (real TensorFlow, tiny images, one epoch)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from edgeclf.cli import app
from edgeclf.rundir import SOURCES_FILE, RunDir

from .conftest import REPO, write_color_folders
from .edge.fixtures import get_bundles

runner = CliRunner()
CLASSES = ("blue", "green", "red")  # the rgb32 test bundle's labels
FAST = ["--size", "32", "--epochs", "1", "--batch-size", "8", "--no-augment", "--arch", "seed"]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return write_color_folders(tmp_path_factory.mktemp("data") / "colors", n_per_class=9, size=32, classes=CLASSES)


@pytest.fixture(scope="module")
def kept(tmp_path_factory) -> Path:
    """What `edgeclf camera --capture` kept from a folder of camera-like colour frames, as a user finds it."""
    bundles = get_bundles(tmp_path_factory)
    frames = tmp_path_factory.mktemp("frames")
    rng = np.random.default_rng(5)
    for i in range(9):  # mixed and washed-out colours: the model is unsure of them
        base = rng.integers(40, 200, 3).astype(np.float32)
        img = np.clip(base + rng.normal(0, 20, (60, 80, 3)), 0, 255).astype(np.uint8)
        cv2.imwrite(str(frames / f"f{i}.png"), img)
    dest = tmp_path_factory.mktemp("kept") / "kept"
    out = subprocess.run([sys.executable, "-m", "edgeclf", "camera", str(bundles.root / "rgb32-float32"), "--source",
                          str(frames), "--capture", str(dest), "--threshold", "1", "--capture-interval", "0",
                          "--capture-sample", "0"], cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return dest


def _relabelled(kept: Path, tmp_path: Path) -> Path:
    """A copy of the kept frames after a person sorted them: one frame moved to another class folder."""
    d = tmp_path / "relabelled"
    shutil.copytree(kept, d)
    first = sorted(d.glob("*/*.jpg"))[0]
    other = next(c for c in CLASSES if c != first.parent.name)
    (d / other).mkdir(exist_ok=True)
    first.rename(d / other / first.name)  # its sidecar stays behind: sidecars are not images either way
    return d


def test_added_frames_join_the_training_side_only_and_are_recorded(data: Path, kept: Path, tmp_path: Path) -> None:
    add = _relabelled(kept, tmp_path)
    images = sorted(str(p.resolve()) for p in add.glob("*/*.jpg"))
    assert len(images) >= 3 and list(add.glob("*/*.json"))  # the sidecars are there, beside the images
    out = tmp_path / "run"
    r = runner.invoke(app, ["train", str(data), "--out", str(out), "--add", str(add), *FAST])
    assert r.exit_code == 0, r.output
    split = RunDir(out).read_split()
    train_paths = [p for p, _ in split.train]
    assert sorted(p for p in train_paths if p in images) == images  # every added image trains
    assert not {p for p, _ in split.val + split.test} & set(images)  # and none is validated or tested on
    assert len(split.train) + len(split.val) + len(split.test) == 27 + len(images)
    for p, y in split.train:
        if p in images:
            assert CLASSES[y] == Path(p).parent.name  # the label is the folder a person put it in
    src = json.loads((out / SOURCES_FILE).read_text())
    assert src["sides"]["train_added"] == len(images) and src["sides"]["train"] == len(split.train)
    by_file = {e["file"]: e for e in src["train"]}
    assert all(by_file[p]["source"] == f"add:{add.resolve()}" for p in images)
    assert sum(e["source"] == "data" for e in src["train"]) == len(split.train) - len(images)
    assert src["added"][0]["usable"] == len(images) and src["added"][0]["ignored"] == []  # sidecars: quietly skipped
    report = json.loads((out / "data_report.json").read_text())
    assert report["added"][0]["dir"] == str(add.resolve())
    assert json.loads((out / "config.json").read_text())["add"] == [str(add.resolve())]


def test_class_folders_must_be_the_data_classes(data: Path, kept: Path, tmp_path: Path) -> None:
    add = _relabelled(kept, tmp_path)
    (add / "purple").mkdir()
    shutil.copy(sorted(add.glob("*/*.jpg"))[0], add / "purple" / "x.jpg")
    out = tmp_path / "run"
    r = runner.invoke(app, ["train", str(data), "--out", str(out), "--add", str(add), *FAST])
    assert r.exit_code != 0
    line = r.output.strip().splitlines()[-1]
    assert "class folder 'purple'" in line and "blue, green, red" in line, r.output
    assert not out.exists()  # nothing trained, no run directory left behind
    r = runner.invoke(app, ["train", str(data), "--out", str(out), "--add", str(data), *FAST])
    assert r.exit_code == 2 and "is DATA_DIR itself" in r.output
    r = runner.invoke(app, ["train", str(data), "--out", str(out), "--add", str(tmp_path / "nope"), *FAST])
    assert r.exit_code == 2 and "no such folder" in r.output
