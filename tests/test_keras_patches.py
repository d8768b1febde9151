"""edgeclf.train.keras_patches: the Keras internals edgeclf patches (keras-team/keras#20585) are still where
and what they were in the installed Keras; a Keras that moved them is refused in one line; the package does
no Keras work at import; and the patches, applied to a real MultiWorkerMirroredStrategy, let fit run and are
undone afterwards."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from edgeclf.errors import RunError

from .conftest import REPO


def test_the_installed_keras_needs_the_patches_and_has_every_patched_name() -> None:
    """Fails when Keras renames, moves or re-signs a patched name, or when a Keras newer than the last one
    checked is installed: then re-run tests/test_distribute.py's two-worker tests and update KNOWN_TO_NEED."""
    import keras

    from edgeclf.train import keras_patches as kp

    assert kp.NEEDED, f"Keras {keras.__version__} is outside {kp.KNOWN_TO_NEED}; check {kp.ISSUE} again"
    assert kp.MISSING == [] and kp.missing_names() == []
    kp.check()


def test_a_renamed_keras_internal_is_one_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from keras.src.backend.tensorflow import trainer as tf_trainer

    from edgeclf.train import keras_patches as kp

    monkeypatch.delattr(tf_trainer, "reduce_per_replica")
    monkeypatch.setattr(tf_trainer.TensorFlowTrainer, "_maybe_symbolic_build", lambda self, batch=None: None)
    missing = kp.missing_names()
    assert missing == ["keras.src.backend.tensorflow.trainer.reduce_per_replica (not found)",
                       "keras.src.backend.tensorflow.trainer.TensorFlowTrainer._maybe_symbolic_build "
                       "(parameters ('self', 'batch'), expected ('self', 'iterator', 'data_batch'))"]
    monkeypatch.setattr(kp, "MISSING", missing)
    with pytest.raises(RunError) as e:
        kp.check()
    msg = str(e.value)
    assert "\n" not in msg and "keras-team/keras#20585" in msg and "reduce_per_replica (not found)" in msg
    assert "--strategy default or mirrored" in msg


@pytest.mark.parametrize("text,version", [("3.15.1", (3, 15)), ("3.16.0.dev2026010103", (3, 16)), ("3", (3, 0))])
def test_version_parsing(text: str, version: tuple[int, int]) -> None:
    from edgeclf.train.keras_patches import _version

    assert _version(text) == version


def test_importing_train_does_no_keras_work() -> None:
    code = ("import sys, edgeclf.train, edgeclf.train.distribute, edgeclf.train.modelio; "
            "print(sorted(m for m in ('keras', 'tensorflow', 'edgeclf.train.keras_patches') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert out.returncode == 0 and out.stdout.strip() == "[]", out


# A MultiWorkerMirroredStrategy with no TF_CONFIG is one local worker: real collectives, no cluster.
PATCHED_FIT = r"""
import numpy as np, tensorflow as tf
strategy = tf.distribute.MultiWorkerMirroredStrategy()
import keras
from keras.src.backend.tensorflow import trainer as tf_trainer
from edgeclf.train.distribute import fitting
with strategy.scope():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1, activation="sigmoid")])
    model.compile(optimizer="sgd", loss="binary_crossentropy", metrics=["accuracy"])
original = tf_trainer.reduce_per_replica
x, y = np.random.default_rng(0).random((16, 4), dtype=np.float32), np.arange(16) % 2
with fitting(strategy, model):
    assert tf_trainer.reduce_per_replica is not original and "_maybe_symbolic_build" in vars(model)
    h = model.fit(tf.data.Dataset.from_tensor_slices((x, y.astype("float32"))).batch(4), epochs=1, verbose=0)
assert tf_trainer.reduce_per_replica is original and "_maybe_symbolic_build" not in vars(model)
print("ok", sorted(h.history))
"""


def test_the_patches_let_fit_run_on_a_real_multi_worker_strategy_and_are_undone() -> None:
    env = {**{k: v for k, v in os.environ.items() if k != "TF_CONFIG"}, "TF_CPP_MIN_LOG_LEVEL": "3"}
    out = subprocess.run([sys.executable, "-c", PATCHED_FIT], capture_output=True, text=True, timeout=240, cwd=REPO,
                         env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().splitlines()[-1] == "ok ['accuracy', 'loss']", out.stdout
