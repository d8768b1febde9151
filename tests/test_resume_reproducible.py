"""`train --resume` after a SIGKILL gives the run an uninterrupted one gives (issue #12, item 9): the same
epoch losses, bit for bit, and the same final weights. Before, a resumed run drew other batches (tf.data's
seeded shuffles also depend on the global seed, which a resume did not set) and other dropout masks (Keras does
not save a random layer's seed state in the backup), so four resumes of one backup gave four epoch-3 losses."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import numpy as np

from .conftest import REPO, kill_after_epoch, write_color_folders

SIZE, EPOCHS = 32, 3


def _train(data: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "edgeclf", "-q", "train", "--arch", "edge", str(data), "--out", str(out), "--size", str(SIZE),
            "--epochs", str(EPOCHS), "--batch-size", "8", "--patience", "50", "--seed", "5",
            "--backup-every", "0"]


def _history(run: Path) -> list[tuple[str, str, str]]:
    return [(r["epoch"], r["loss"], r["val_loss"]) for r in csv.DictReader((run / f"history-{SIZE}.csv").open())]


def _weights(run: Path) -> list[np.ndarray]:
    from edgeclf.train.modelio import load_keras

    return [np.asarray(w) for w in load_keras(run / "models" / f"{SIZE}.keras").weights]


def test_a_resumed_run_equals_the_uninterrupted_run(tmp_path: Path) -> None:
    data = write_color_folders(tmp_path / "data", n_per_class=30, size=48)
    whole = tmp_path / "whole"
    subprocess.run(_train(data, whole), cwd=REPO, check=True, capture_output=True, timeout=600)

    killed = tmp_path / "killed"
    state_file = killed / "state" / str(SIZE) / "state.json"
    assert kill_after_epoch(_train(data, killed), state_file, 2, REPO, 600) == 2 and not (killed / "run.json").exists(), \
        "the kill did not land in epoch 3"
    r = subprocess.run([sys.executable, "-m", "edgeclf", "-q", "train", "--resume", str(killed)], cwd=REPO,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]

    assert _history(killed) == _history(whole)  # every epoch's loss and val_loss, as printed: the same digits
    for a, b in zip(_weights(killed), _weights(whole), strict=True):
        np.testing.assert_array_equal(a, b)


def test_backups_at_an_interval_train_the_same_model_as_backups_every_epoch(tmp_path: Path) -> None:
    """--backup-every only changes when files are written: the default interval (one backup at the end of this
    short run) and a backup after every epoch give the same epochs and weights, bit for bit."""
    data = write_color_folders(tmp_path / "data", n_per_class=20, size=48)
    every, interval = tmp_path / "every", tmp_path / "interval"
    subprocess.run(_train(data, every), cwd=REPO, check=True, capture_output=True, timeout=600)
    subprocess.run(_train(data, interval)[:-2], cwd=REPO, check=True, capture_output=True, timeout=600)
    assert _history(interval) == _history(every)
    for a, b in zip(_weights(interval), _weights(every), strict=True):
        np.testing.assert_array_equal(a, b)
