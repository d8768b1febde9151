"""The seed and the default architecture, a few epochs at 150 on a slice of the shared horse-or-human set."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import pytest
from typer.testing import CliRunner

from edgeclf.cli import app
from edgeclf.rundir import RunDir
from edgeclf.train.config import DEFAULT_ARCH
from edgeclf.train.modelio import load_keras

runner = CliRunner()


@pytest.fixture(scope="module")
def data_slice(shared_data: Path, tmp_path_factory) -> Path:
    """A copy of part of the shared set: 20 horse subjects x 5 renders, 7 human subjects x 14."""
    d = tmp_path_factory.mktemp("hh")
    for cls, subjects, per in (("horses", 20, 5), ("humans", 7, 14)):
        (d / cls).mkdir()
        files = sorted((shared_data / cls).glob("*.png"))
        groups: dict[str, list[Path]] = {}
        for f in files:
            groups.setdefault(f.stem.rsplit("-", 1)[0], []).append(f)
        for g in sorted(groups)[:subjects]:
            for f in groups[g][:per]:
                shutil.copy(f, d / cls / f.name)
    return d


@pytest.mark.slow
@pytest.mark.parametrize("arch,recipe", [("seed", ["--no-augment", "--schedule", "constant"]),  # the course's
                                         (DEFAULT_ARCH, [])])  # edgeclf's defaults
def test_a_few_epochs_at_150_beat_chance_on_test_subjects(data_slice: Path, tmp_path: Path, arch: str,
                                                           recipe: list[str]) -> None:
    out = tmp_path / "run"
    r = runner.invoke(app, ["train", str(data_slice), "--arch", arch, "--size", "150", "--epochs", "5",
                            "--batch-size", "8", "--out", str(out), "--seed", "1", *recipe])
    assert r.exit_code == 0, r.output
    run = RunDir(out)
    info = run.read_info()
    assert info.labels == ("horses", "humans") and info.task == "binary" and info.arch == arch
    split = run.read_split()
    assert split.strategy == "group"
    groups = lambda side: {p.rsplit("-", 1)[0] for p, _ in side}  # noqa: E731
    assert not groups(split.train) & groups(split.val) and not groups(split.train) & groups(split.test)
    for f in ("config.json", "labels.txt", "split.json", "data_report.json", "metrics.json", "history-150.csv",
              "curves.png", "confusion.png", "models/150.keras"):
        assert (out / f).is_file(), f
    report = json.loads((out / "data_report.json").read_text())
    assert report["converted"] == {"RGBA -> RGB": 198} and report["bad"] == []
    acc = json.loads((out / "metrics.json").read_text())["sizes"]["150"]["accuracy"]
    majority = max(Counter(y for _, y in split.test).values()) / len(split.test)
    assert acc > majority + 0.1, f"{arch}: test accuracy {acc} vs always-the-majority {majority:.3f}"
    model = load_keras(run.model_path(150))
    assert model.input_shape == (None, 150, 150, 3)
