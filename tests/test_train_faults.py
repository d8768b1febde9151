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
           "--epochs", str(epochs), "--batch-size", "4", "--patience", "50", "--no-augment", "--select", "accuracy",
           "--backup-every", "0"]  # a backup after every epoch, so the kill lands between two
    scratch = tmp_path / "tmpdir"  # the killed process's TMPDIR: a SIGKILL leaves TensorFlow's temp files
    scratch.mkdir()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env={**os.environ, "TMPDIR": str(scratch)})
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


def _keeper_fit(tmp_path: Path, **keeper: object) -> tuple:
    """A small `edge` model compiled on 16 colour images, and an EpochKeeper for it writing under tmp_path:
    (model, keeper, train(first_epoch, epochs), validation batches, best model path, state folder)."""
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
    best, sdir = tmp_path / "models" / "32.keras", tmp_path / "state"
    sdir.mkdir()
    k = EpochKeeper(size=32, state=SizeState(32), state_dir=sdir, best_path=best, history_path=tmp_path / "history.csv",
                    inference_model=inference_view(model), patience=50, n_train=len(files), log_epochs=False, **keeper)
    return (model, k, lambda first, epochs: train_dataset(files, labels, spec, 4, 2, 0, first, epochs),
            eval_dataset(files, labels, spec, 8, 2), best, sdir)


def test_divergence_after_a_good_epoch_keeps_the_good_model(tmp_path: Path) -> None:
    """Real fit through the EpochKeeper: epoch 1 is good, then the lr is made absurd; the epoch-1 model stays."""
    model, keeper, train, vds, best, _ = _keeper_fit(tmp_path, epochs=4)
    model.fit(train(0, 1), validation_data=vds, epochs=1, steps_per_epoch=4,
              callbacks=[keeper.callback], verbose=0)
    assert keeper.state.best is not None and best.exists()
    good_bytes = best.read_bytes()
    model.optimizer.learning_rate.assign(1e30)
    model.fit(train(1, 4), validation_data=vds, epochs=4, initial_epoch=1,
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


def test_backups_wait_for_their_interval_and_a_divergence_keeps_the_best_not_yet_written(tmp_path: Path) -> None:
    """--backup-every: epochs between backups write nothing; a divergence then writes the best epoch's weights
    (kept in memory, not the diverged live ones) and a state that names what is on disk (no backup yet)."""
    from edgeclf.train.modelio import inference_view

    model, keeper, train, vds, best, sdir = _keeper_fit(tmp_path, epochs=6, select="loss", backup_every=1e9)
    model.fit(train(0, 3), validation_data=vds, epochs=3, steps_per_epoch=4,
              callbacks=[keeper.callback], verbose=0)
    assert keeper.state.epoch == 3 and keeper.state.best is not None
    assert not (sdir / "state.json").exists() and not best.exists() and not list(sdir.glob("backup-*"))
    kept = keeper.state.best
    assert kept.epoch == 3  # the validation loss fell each epoch (seeded)
    expected = [np.array(w) for w in inference_view(model).get_weights()]
    pick = inference_view(model)
    keeper._epoch_end(model, 3, {"loss": 0.5, "val_loss": 99.0, "val_accuracy": 0.0})  # a worse 4th epoch
    model.set_weights([np.full_like(w, np.nan) for w in model.get_weights()])  # then the weights blow up
    keeper._epoch_end(model, 4, {"loss": float("nan"), "val_loss": float("nan"), "val_accuracy": 0.0})
    saved = json.loads((sdir / "state.json").read_text())
    assert saved["status"] == "diverged" and saved["epoch"] == 0 and saved["backup"] is None
    assert saved["best"]["epoch"] == kept.epoch and not list(sdir.glob("backup-*"))
    written = load_keras(best).get_weights()
    assert all(np.isfinite(w).all() for w in written)
    for a, b in zip(written, expected, strict=True):  # the best epoch's weights, to the bit
        np.testing.assert_array_equal(a, b)
    assert all(np.isnan(w).all() for w in pick.get_weights() if w.dtype.kind == "f")  # the live weights were put back


def test_a_flush_writes_the_best_model_the_backup_and_then_the_state(tmp_path: Path) -> None:
    """A flush (at the interval, the last epoch or a phase's end) writes the best model, the backup and the
    state together; a flush with nothing new writes nothing."""
    model, keeper, _, _, best, sdir = _keeper_fit(tmp_path, epochs=3, select="loss", backup_every=1e9)
    keeper._epoch_end(model, 0, {"loss": 0.6, "val_loss": 0.6, "val_accuracy": 0.5})
    assert not best.exists()
    keeper.flush(model)  # what train_size does at the end of a phase
    saved = json.loads((sdir / "state.json").read_text())
    assert saved["epoch"] == 1 and saved["backup"] == "backup-1.keras" and saved["best"]["epoch"] == 1
    assert best.exists() and (sdir / "backup-1.keras").exists()
    mtime = (sdir / "state.json").stat().st_mtime_ns
    keeper.flush(model)  # nothing new: nothing written
    assert (sdir / "state.json").stat().st_mtime_ns == mtime
    keeper._epoch_end(model, 1, {"loss": 0.6, "val_loss": 0.7, "val_accuracy": 0.5})
    keeper._epoch_end(model, 2, {"loss": 0.6, "val_loss": 0.8, "val_accuracy": 0.5})  # the last epoch: written
    saved = json.loads((sdir / "state.json").read_text())
    assert saved["epoch"] == 3 and saved["backup"] == "backup-3.keras" and saved["best"]["epoch"] == 1
    assert [p.name for p in sdir.glob("backup-*")] == ["backup-3.keras"]
