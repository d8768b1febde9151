"""Faults during training (issue 7 cases 9, 12): SIGKILL mid-epoch then --resume; a diverging loss."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from edgeclf.cli import app
from edgeclf.rundir import RunDir
from edgeclf.train.modelio import load_keras

from .conftest import write_color_folders

runner = CliRunner()


def _read_state(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return None


def _complete_files(run: Path) -> None:
    """Every visible file in the run dir is whole: JSON parses, models load."""
    for f in run.rglob("*"):
        if f.name.startswith(".") or not f.is_file():
            continue
        if f.suffix == ".json":
            json.loads(f.read_text())
        if f.suffix == ".keras":
            load_keras(f)


def test_sigkill_mid_epoch_then_resume(tmp_path: Path) -> None:
    data = write_color_folders(tmp_path / "d", n_per_class=40, size=96)
    out = tmp_path / "run"
    size, epochs = 96, 6
    cmd = [sys.executable, "-m", "edgeclf", "-q", "train", "--arch", "edge", str(data), "--out", str(out), "--size", str(size),
           "--epochs", str(epochs), "--batch-size", "4", "--patience", "50", "--no-augment", "--select", "accuracy"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    state_file = out / "state" / str(size) / "state.json"
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and proc.poll() is None:
            st = _read_state(state_file)
            if st and st["epoch"] >= 2:
                break
            time.sleep(0.05)
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        # Into the next epoch, but not past it.
        time.sleep(min(0.4 * st["history"][-1]["seconds"], 1.0))
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    before = _read_state(state_file)
    assert before["epoch"] < epochs and not (out / "run.json").exists(), "the run finished before the kill"
    best_before = before["best"]["accuracy"]
    _complete_files(out)

    r = runner.invoke(app, ["train", "--resume", str(out)])
    assert r.exit_code == 0, r.output
    assert f"resuming after epoch {before['epoch']}" in r.output
    rows = list(csv.DictReader((out / f"history-{size}.csv").open()))
    assert [int(x["epoch"]) for x in rows] == list(range(1, epochs + 1))
    metrics = json.loads((out / "metrics.json").read_text())["sizes"][str(size)]
    val_acc = [float(x["val_accuracy"]) for x in rows]
    assert metrics["val_accuracy"] >= best_before and metrics["val_accuracy"] == pytest.approx(max(val_acc), abs=1e-4)
    # The kept model is the best epoch: highest val_accuracy, ties to the lower val_loss.
    ranked = max(rows, key=lambda x: (float(x["val_accuracy"]), -float(x["val_loss"])))
    assert metrics["best_epoch"] == int(ranked["epoch"])
    assert RunDir(out).read_info().models[size].file == f"models/{size}.keras"
    assert not [f for f in out.rglob(".*") if f.name != ".edgeclf.lock"] and not list(out.rglob("backup-*.keras"))
    _complete_files(out)


def test_absurd_lr_stops_with_a_clear_message(tmp_path: Path) -> None:
    data = write_color_folders(tmp_path / "d", n_per_class=9, size=32)
    r = runner.invoke(app, ["train", "--arch", "edge", str(data), "--out", str(tmp_path / "run"), "--size", "32", "--epochs", "3",
                            "--lr", "1e30", "--no-augment"])
    assert r.exit_code == 1 and "Traceback" not in r.output
    err = [ln for ln in r.output.splitlines() if ln.startswith("error:")]
    assert len(err) == 1 and "training diverged" in err[0] and "lower --lr" in err[0], r.output
    model = RunDir(tmp_path / "run").model_path(32)
    if model.exists():  # whatever was kept is a finite, good-epoch model
        assert all(np.isfinite(w).all() for w in load_keras(model).get_weights())
    assert not (tmp_path / "run" / "run.json").exists()


def test_divergence_after_a_good_epoch_keeps_the_good_model(tmp_path: Path) -> None:
    """Real fit through the EpochKeeper: epoch 1 is good, then the lr is made absurd; the epoch-1 model stays."""
    import keras

    from edgeclf.preprocess import PreprocessSpec
    from edgeclf.train.archs import build_model
    from edgeclf.train.callbacks import EpochKeeper, SizeState
    from edgeclf.train.modelio import inference_view
    from edgeclf.train.tfdata import eval_dataset, train_dataset

    data = write_color_folders(tmp_path / "d", n_per_class=8, size=32)
    files = sorted(str(p) for p in data.glob("*/*.png"))
    labels = [0 if "/blue/" in f else 1 for f in files]
    spec = PreprocessSpec(32, 32)
    keras.utils.set_random_seed(0)
    model = build_model("edge", 32, 2)
    model.compile(keras.optimizers.RMSprop(1e-3), "binary_crossentropy", metrics=["accuracy"])
    best = tmp_path / "models" / "32.keras"
    keeper = EpochKeeper(size=32, state=SizeState(32), state_dir=tmp_path / "state", best_path=best,
                    history_path=tmp_path / "history.csv", inference_model=inference_view(model), patience=50,
                    epochs=4, n_train=len(files), log_epochs=False)
    (tmp_path / "state").mkdir()
    vds = eval_dataset(files, labels, spec, 8, 2)
    model.fit(train_dataset(files, labels, spec, 4, 2, 0, 0, 1), validation_data=vds, epochs=1, steps_per_epoch=4,
              callbacks=[keeper.callback], verbose=0)
    assert keeper.state.best is not None and best.exists()
    good_bytes = best.read_bytes()
    model.optimizer.learning_rate.assign(1e30)
    model.fit(train_dataset(files, labels, spec, 4, 2, 0, 1, 4), validation_data=vds, epochs=4, initial_epoch=1,
              steps_per_epoch=4, callbacks=[keeper.callback], verbose=0)
    st = keeper.state
    assert st.status == "diverged" and st.stopped == "nan" and st.best.epoch == 1 and st.epoch == 1
    assert best.read_bytes() == good_bytes  # the good model was not replaced
    assert all(np.isfinite(w).all() for w in load_keras(best).get_weights())
    saved = json.loads((tmp_path / "state" / "state.json").read_text())
    assert saved["status"] == "diverged" and saved["backup"] == "backup-1.keras"
    assert os.path.exists(tmp_path / "state" / "backup-1.keras")


def test_a_train_that_fails_before_training_leaves_no_run_directory(tmp_path: Path) -> None:
    few = write_color_folders(tmp_path / "few", n_per_class=6, size=32)  # 2 subjects a class: no 3-way split
    out = tmp_path / "run"
    r = runner.invoke(app, ["train", "--arch", "edge", str(few), "--out", str(out), "--size", "32", "--epochs", "1", "--no-augment"])
    assert r.exit_code != 0 and "needs at least 3" in r.output and "Traceback" not in r.output
    assert not out.exists()  # --out can be used again, and there is nothing for --resume to repeat
    enough = write_color_folders(tmp_path / "enough", n_per_class=9, size=32)
    r = runner.invoke(app, ["train", "--arch", "edge", str(enough), "--out", str(out), "--size", "32", "--epochs", "1", "--no-augment"])
    assert r.exit_code == 0, r.output


def test_a_second_writer_of_one_run_is_refused(tmp_path: Path) -> None:
    from edgeclf.dirlock import exclusive

    data = write_color_folders(tmp_path / "d", n_per_class=9, size=32)
    out = tmp_path / "run"
    r = runner.invoke(app, ["train", "--arch", "edge", str(data), "--out", str(out), "--size", "32", "--epochs", "1", "--no-augment"])
    assert r.exit_code == 0, r.output
    before = (out / "metrics.json").read_text()
    with exclusive(out, "holder"):  # another process's lock: a flock on its own open file
        r = runner.invoke(app, ["train", "--resume", str(out)])
    assert r.exit_code != 0 and "another `edgeclf train` is writing this run" in r.output
    assert (out / "metrics.json").read_text() == before
    r = runner.invoke(app, ["train", "--resume", str(out)])  # released: resume works again
    assert r.exit_code == 0 and "nothing to resume" in r.output, r.output
