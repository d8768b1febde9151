"""`edgeclf train` end to end through the CLI runner, on tiny generated class folders (real TensorFlow)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from edgeclf.cli import app
from edgeclf.rundir import RunDir

from .conftest import write_color_folders
from .test_train_data import write_odd_files

runner = CliRunner()
FAST = ["--size", "32", "--epochs", "2", "--batch-size", "8", "--no-augment"]


def _train(*args: str) -> "object":
    # The pipeline's tests train the small from-scratch `edge` net: the default (EfficientNet-Lite0 with
    # ImageNet weights) is trained by tests/test_backbones.py and tests/test_lite0.py.
    pinned = [] if "--arch" in args or "--resume" in args else ["--arch", "edge"]
    return runner.invoke(app, ["train", *pinned, *args])


@pytest.fixture(scope="module")
def colors(tmp_path_factory) -> Path:
    return write_color_folders(tmp_path_factory.mktemp("colors"), n_per_class=12, size=40)


@pytest.fixture(scope="module")
def trained(colors: Path, tmp_path_factory) -> tuple[Path, "object"]:
    out = tmp_path_factory.mktemp("runs") / "run"
    r = _train(str(colors), "--out", str(out), "--size", "48", "--size", "32", "--epochs", "2", "--batch-size", "8",
               "--seed", "3")
    return out, r


def test_run_directory_is_complete_and_readable(trained, colors: Path) -> None:
    import keras

    out, r = trained
    assert r.exit_code == 0, r.output
    assert "group split" in r.output and "test acc [95 % CI]" in r.output
    assert "say" in r.output or "?" in r.output  # 2 test subjects: the figure is flagged as meaning little
    info = RunDir(out).read_info()
    assert info.labels == ("blue", "red") and info.task == "binary" and info.arch == "edge"
    assert info.data_dir == str(colors.resolve()) and sorted(info.models) == [32, 48]
    split = RunDir(out).read_split()
    assert split.strategy == "group" and len(split.train) + len(split.val) + len(split.test) == 24
    assert split.test and split.val and all((colors / p).is_file() for p, _ in split.train + split.val + split.test)
    subj = lambda side: {p.rsplit("-", 1)[0] for p, _ in side}  # noqa: E731
    assert not subj(split.train) & subj(split.test) and not subj(split.val) & subj(split.test)
    assert (out / "labels.txt").read_text("utf-8") == "blue\nred\n"
    assert json.loads((out / "config.json").read_text())["sizes"] == [48, 32]
    metrics = json.loads((out / "metrics.json").read_text())
    for size in (32, 48):
        m = metrics["sizes"][str(size)]
        assert set(m) >= {"accuracy", "loss", "per_class", "confusion", "best_epoch", "train_img_s", "params"}
        assert np.asarray(m["confusion"]).sum() == len(split.test)  # the reported figure is the test side's
        top1 = m["test"]["top1"]
        assert top1["n_images"] == len(split.test) and top1["low"] <= top1["accuracy"] <= top1["high"]
        assert top1["n_groups"] == len(subj(split.test)) and top1["enough"] is False
        assert 0.0 <= m["camera_sim"]["accuracy"] <= 1.0 and m["camera_sim"]["n_images"] == len(split.test)
        assert m["val"]["n"] == len(split.val)
        assert m["accuracy"] >= 0.75  # colours are easy: far above chance
        rows = list(csv.DictReader((out / f"history-{size}.csv").open()))
        assert [int(r["epoch"]) for r in rows] == list(range(1, len(rows) + 1)) and "val_accuracy" in rows[0]
        model = keras.models.load_model(RunDir(out).model_path(size), safe_mode=True)
        assert model.input_shape == (None, size, size, 3) and model.output_shape == (None, 1)
        assert "Lambda" not in {type(layer).__name__ for layer in model.layers}
        assert getattr(model, "optimizer", None) is None  # inference only: no optimizer state saved
    for f in ("curves.png", "confusion.png"):
        assert (out / f).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = json.loads((out / "data_report.json").read_text())
    assert report["usable"] == 24 and report["bad"] == [] and "group split" in report["split"]
    assert not [f for f in out.rglob(".*") if f.name != ".edgeclf.lock"] and not list(out.rglob("backup-*"))  # no temps


def test_probabilities_follow_the_label_order(trained, colors: Path) -> None:
    """labels[1] ('red') is the sigmoid's 1: a red image scores high, a blue one low."""
    from edgeclf.edge.preprocess import Preprocessor
    from edgeclf.imageio import read_bgr
    from edgeclf.preprocess import PreprocessSpec
    from edgeclf.train.modelio import load_keras

    out, _ = trained
    model = load_keras(RunDir(out).model_path(32))
    pre = Preprocessor(PreprocessSpec(32, 32))
    red = float(model(pre(read_bgr(next((colors / "red").glob("*.png")))), training=False)[0, 0])
    blue = float(model(pre(read_bgr(next((colors / "blue").glob("*.png")))), training=False)[0, 0])
    assert red > 0.5 > blue


def test_three_classes_give_softmax_and_multiclass(tmp_path: Path) -> None:
    import keras

    data = write_color_folders(tmp_path / "d", n_per_class=6, size=32, classes=("blue", "green", "red"))
    r = _train(str(data), "--out", str(tmp_path / "run"), *FAST, "--split", "stratified")
    assert r.exit_code == 0, r.output
    info = RunDir(tmp_path / "run").read_info()
    assert info.task == "multiclass" and info.labels == ("blue", "green", "red")
    model = keras.models.load_model(RunDir(tmp_path / "run").model_path(32), safe_mode=True)
    assert model.output_shape == (None, 3) and model.layers[-1].activation.__name__ == "softmax"
    assert "stratified split" in r.output


def test_same_seed_twice_gives_the_same_metrics(colors: Path, tmp_path: Path) -> None:
    args = [str(colors), *FAST, "--augment", "--seed", "11", "--epochs", "1"]
    a, b = _train(*args, "--out", str(tmp_path / "a")), _train(*args, "--out", str(tmp_path / "b"))
    assert a.exit_code == 0 and b.exit_code == 0, a.output + b.output
    ma, mb = (json.loads((tmp_path / x / "metrics.json").read_text())["sizes"]["32"] for x in "ab")
    ha, hb = ((tmp_path / x / "history-32.csv").read_text().splitlines() for x in "ab")
    strip = lambda rows: [",".join(r.split(",")[:-2]) for r in rows]  # noqa: E731  (drop seconds, img/s)
    assert strip(ha) == strip(hb)
    assert {k: ma[k] for k in ("accuracy", "loss", "confusion")} == {k: mb[k] for k in ("accuracy", "loss", "confusion")}


def test_broken_images_are_skipped_and_fatal_with_strict(tmp_path: Path) -> None:
    data = write_color_folders(tmp_path / "d", n_per_class=9, size=32)
    write_odd_files(data / "red")
    r = _train(str(data), "--out", str(tmp_path / "run"), *FAST)
    assert r.exit_code == 0, r.output
    assert "5 broken image(s) skipped" in r.output
    bad = {b["file"] for b in json.loads((tmp_path / "run" / "data_report.json").read_text())["bad"]}
    assert "red/zero-0.jpg" in bad and "red/bomb-0.png" in bad
    r = _train(str(data), "--out", str(tmp_path / "strict"), *FAST, "--strict")
    assert r.exit_code == 1 and "--strict is on" in r.output and "Traceback" not in r.output
    assert not (tmp_path / "strict" / "run.json").exists()


def test_unicode_class_names_train(tmp_path: Path) -> None:
    data = write_color_folders(tmp_path / "d", n_per_class=9, size=32, classes=("große Katze", "chien noir 🐕"))
    r = _train(str(data), "--out", str(tmp_path / "run 1"), *FAST)
    assert r.exit_code == 0, r.output
    assert (tmp_path / "run 1" / "labels.txt").read_text("utf-8") == "chien noir 🐕\ngroße Katze\n"
    assert RunDir(tmp_path / "run 1").read_info().labels == ("chien noir 🐕", "große Katze")


@pytest.mark.parametrize("setup,expect", [
    ("empty", "found no images in sub-folders"),
    ("one-class", "found 1 class ('red')"),
    ("one-image", "class 'red' has 1 usable image"),
])
def test_bad_data_folders_are_one_clear_line(tmp_path: Path, setup: str, expect: str) -> None:
    data = tmp_path / "d"
    data.mkdir()
    if setup == "one-class":
        write_color_folders(data, n_per_class=4, size=16, classes=("red",))
    if setup == "one-image":
        write_color_folders(data, n_per_class=4, size=16)
        for f in sorted((data / "red").glob("*.png"))[1:]:
            f.unlink()
    r = _train(str(data), "--out", str(tmp_path / "run"), *FAST)
    lines = [ln for ln in r.output.splitlines() if ln.startswith("error:")]
    assert r.exit_code == 1 and len(lines) == 1 and expect in lines[0], r.output
    assert "Traceback" not in r.output


def test_unwritable_out_fails_before_any_work(colors: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    for out in (blocker / "run", Path("/proc/edgeclf-run")):
        r = _train(str(colors), "--out", str(out), *FAST)
        assert r.exit_code == 1 and "cannot write there" in r.output and "choose a writable folder" in r.output, r.output
        assert "checking" not in r.output and "split" not in r.output  # the data was never looked at


def test_existing_run_is_not_overwritten(trained, colors: Path) -> None:
    out, _ = trained
    r = _train(str(colors), "--out", str(out), *FAST)
    assert r.exit_code == 2 and "already exists" in r.output and f"--resume {out}" in r.output


def test_bad_options_are_refused_before_work(colors: Path, tmp_path: Path) -> None:
    for args, expect in [(["--arch", "resnet"], "--arch 'resnet' is not known"),
                         (["--size", "8"], "--size [8]"),
                         (["--validation-split", "1.5"], "--validation-split 1.5 must be between 0 and 1"),
                         (["--lr", "0"], "--lr 0.0 must be a positive number"),
                         (["--strategy", "tpu"], "--strategy 'tpu' is not supported")]:
        r = _train(str(colors), "--out", str(tmp_path / "x"), *args)
        assert r.exit_code == 2 and expect in r.output, (args, r.output)
    assert not (tmp_path / "x").exists()


def test_resume_refuses_new_options_and_finishes_a_complete_run(trained) -> None:
    out, _ = trained
    r = _train("--resume", str(out), "--lr", "0.1")
    assert r.exit_code == 2 and "drop --lr" in r.output
    before = (out / "metrics.json").read_text()
    r = _train("--resume", str(out))
    assert r.exit_code == 0 and "nothing to resume" in r.output, r.output
    assert (out / "metrics.json").read_text() == before


def test_validation_dir_is_the_held_out_side(colors: Path, tmp_path: Path) -> None:
    val = write_color_folders(tmp_path / "val", n_per_class=3, size=40, seed=5)
    r = _train(str(colors), "--validation-dir", str(val), "--out", str(tmp_path / "run"), *FAST)
    assert r.exit_code == 0, r.output
    split = RunDir(tmp_path / "run").read_split()
    assert split.val_dir == str(val.resolve()) and len(split.val) == 6
    assert all((val / p).is_file() for p, _ in split.val)
    # the test side still comes from DATA_DIR, by subject, and is measured once at the end
    assert len(split.train) + len(split.test) == 24 and split.test and split.test_dir is None
    subj = lambda side: {p.rsplit("-", 1)[0] for p, _ in side}  # noqa: E731
    assert not subj(split.train) & subj(split.test)


def test_test_dir_is_the_test_side_and_data_dir_is_refused_as_either(colors: Path, tmp_path: Path) -> None:
    test = write_color_folders(tmp_path / "test", n_per_class=3, size=40, seed=9)
    r = _train(str(colors), "--test-dir", str(test), "--out", str(tmp_path / "run"), *FAST)
    assert r.exit_code == 0, r.output
    split = RunDir(tmp_path / "run").read_split()
    assert split.test_dir == str(test.resolve()) and len(split.test) == 6 and len(split.train) + len(split.val) == 24
    m = json.loads((tmp_path / "run" / "metrics.json").read_text())["sizes"]["32"]
    assert m["test"]["top1"]["n_images"] == 6
    for opt in ("--test-dir", "--validation-dir"):
        r = _train(str(colors), opt, str(colors), "--out", str(tmp_path / f"bad{opt}"), *FAST)
        assert r.exit_code == 2 and "is DATA_DIR itself" in r.output and not (tmp_path / f"bad{opt}").exists()


def test_cv_folds_partition_and_report_mean_and_sd(tmp_path: Path) -> None:
    data = write_color_folders(tmp_path / "data", n_per_class=12, size=40, seed=2)
    out = tmp_path / "cv"
    r = _train(str(data), "--cv", "3", "--out", str(out), *FAST)
    assert r.exit_code == 0, r.output
    assert "3-fold cross-validation" in r.output and "±" in r.output
    doc = json.loads((out / "cv.json").read_text())
    assert doc["k"] == 3 and len(doc["folds"]) == 3
    tested = [p for i in (1, 2, 3) for p, _ in RunDir(out / f"fold-{i}").read_split().test]
    assert sorted(tested) == sorted(f"{c}/{f.name}" for c in ("blue", "red") for f in (data / c).iterdir())
    accs = [f["32"]["test"] for f in doc["folds"]]
    assert doc["summary"]["32"]["test_mean"] == pytest.approx(sum(accs) / 3, abs=1e-4)
    r = _train("--resume", str(out), "--cv", "3")
    assert r.exit_code == 2
