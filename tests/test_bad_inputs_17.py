"""Issue #12, item 17: inputs refused early with one line (or warned about), never a wrong run or a silent stop.

A class folder linked to DATA_DIR (`x -> .`), `--group-pattern '('`, `--out` naming a file, `--on-change` naming
a program that does not exist, a truncated video."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from edgeclf.cli import app
from edgeclf.errors import DataError, UsageError
from edgeclf.train.config import TrainConfig
from edgeclf.train.data import find_classes

from .conftest import write_color_folders

runner = CliRunner()


def _one_line(r, code: int) -> str:
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("error")]  # info lines ("strategy: ...") may precede
    assert r.exit_code == code and len(lines) == 1 and "Traceback" not in r.output, (r.exit_code, r.output)
    return lines[0]


@pytest.fixture()
def colors(tmp_path: Path) -> Path:
    return write_color_folders(tmp_path / "data", n_per_class=6, size=32)


@pytest.mark.parametrize("target", [".", "..", "red"])
def test_a_class_folder_linked_to_data_dir_or_another_class_is_refused(colors: Path, tmp_path: Path,
                                                                       target: str) -> None:
    (colors / "x").symlink_to(target)
    with pytest.raises(DataError, match=r"/x: is a link to .*(holds DATA_DIR itself|overlaps the class folder)"):
        find_classes(colors)
    out = tmp_path / "run"
    line = _one_line(runner.invoke(app, ["train", "--arch", "edge", str(colors), "--out", str(out), "--size", "32"]), 1)
    assert f"{colors / 'x'}: is a link" in line and "remove the link" in line
    assert not out.exists()


def test_a_class_folder_linked_elsewhere_still_works(colors: Path, tmp_path: Path) -> None:
    elsewhere = write_color_folders(tmp_path / "other", n_per_class=3, size=32, classes=("green",))
    (colors / "green").symlink_to(elsewhere / "green")
    labels, files, _ = find_classes(colors)
    assert labels == ("blue", "green", "red") and len(files) == 15


def test_bad_group_pattern_is_refused_before_any_image_is_read(colors: Path, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"--group-pattern '\(' is not a valid regular expression"):
        TrainConfig(data_dir=str(colors), group_pattern="(")  # the config itself: no data has been looked at
    out = tmp_path / "run"
    line = _one_line(runner.invoke(app, ["train", "--arch", "edge", str(colors), "--group-pattern", "(", "--out", str(out)]), 2)
    assert "--group-pattern '('" in line and not out.exists()


def test_out_naming_a_file_says_so(colors: Path, tmp_path: Path) -> None:
    f = tmp_path / "notes.txt"
    f.write_text("mine")
    line = _one_line(runner.invoke(app, ["train", "--arch", "edge", str(colors), "--out", str(f)]), 2)
    assert f"--out {f}: is a file" in line and "--resume" not in line
    assert f.read_text() == "mine"


@pytest.mark.parametrize("cmd, says", [("/nonexistent/hook.sh", "does not exist"),
                                       ("no-such-program-edgeclf", "is not a program on PATH"),
                                       ("{tmp}", "is a folder"), ("{tmp}/plain.sh", "is not executable")])
def test_on_change_is_checked_before_the_run(bundles_dir: Path, tmp_path: Path, cmd: str, says: str) -> None:
    (tmp_path / "plain.sh").write_text("#!/bin/sh\n")
    cmd = cmd.format(tmp=tmp_path)
    r = runner.invoke(app, ["camera", str(bundles_dir / "b32-float32"), "--source", str(bundles_dir / "images"),
                            "--on-change", cmd])
    line = _one_line(r, 2)
    assert line.startswith(f"error: --on-change {cmd!r}: ") and says in line, line
    assert '"event": "start"' not in r.stdout  # refused before the run, not at the first change


def test_a_truncated_video_is_a_warning_not_a_silent_stop(bundles_dir: Path, tmp_path: Path) -> None:
    video = tmp_path / "cut.avi"
    w = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 48))
    rng = np.random.default_rng(0)
    for _ in range(40):
        w.write(rng.integers(0, 256, (48, 64, 3), np.uint8))
    w.release()
    data = video.read_bytes()
    video.write_bytes(data[: len(data) // 2])  # a copy cut short: the header still says 40 frames
    r = runner.invoke(app, ["camera", str(bundles_dir / "b32-float32"), "--source", str(video)])
    assert r.exit_code == 0, r.output
    warned = [ln for ln in r.stderr.splitlines() if "the video ended after" in ln]
    assert len(warned) == 1 and "of the 40 frames its header announces" in warned[0] and "truncated" in warned[0]
    n = int(warned[0].split("ended after ")[1].split()[0])
    assert 5 < n < 40


@pytest.fixture(scope="module")
def bundles_dir() -> Path:
    root = os.environ.get("EDGECLF_TFL_FIXTURES")
    if not root or not (Path(root) / "index.json").is_file():
        pytest.skip("EDGECLF_TFL_FIXTURES is not set (scripts/test.sh sets it); make them with "
                    "`python -m tests.make_bundles DIR`")
    return Path(root)
