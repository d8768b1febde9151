"""A tiny but real training run directory, for the converter's tests (the trainer's output contract).

Solid-colour-ish images per class (tests/conftest.py), a split by subject, and per input size a small
Keras model trained for a few epochs through the training preprocessing, saved as models/<size>.keras.
The net ends Flatten -> Dense(16) so that dynamic-range quantization has a weight matrix big enough
(>= 1024 values) to quantize, as the course's nets do.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Sequence

import numpy as np
import pytest

from edgeclf.preprocess import PreprocessSpec
from edgeclf.rundir import RunDir, RunInfo, RunModel, Split

from .conftest import write_color_folders

SIZES = (32, 24)


def _split(data: Path, classes: Sequence[str]) -> Split:
    """Subject `<class>NN` groups: every fourth subject held out (no subject on both sides)."""
    train, val = [], []
    for label, name in enumerate(classes):
        for f in sorted((data / name).iterdir()):
            subject = int(f.stem[len(name):len(name) + 2])
            (val if subject % 4 == 3 else train).append((f"{name}/{f.name}", label))
    return Split("group", tuple(train), tuple(val))


def tiny_model(size: int, n_classes: int):
    """The registry's test architecture (`test-tiny`), built as `edgeclf train` builds every model."""
    from edgeclf.train.archs import build_model

    return build_model("test-tiny", size, n_classes)


def make_run(root: Path, classes: Sequence[str] = ("blue", "red"), sizes: Sequence[int] = SIZES,
             n_per_class: int = 16, epochs: int = 12, seed: int = 0, data: Path | None = None) -> Path:
    """Write data (root/data, unless `data` names a folder of `<class>/<class>NN*.png` files) and a finished
    run (root/run); return the run directory."""
    import keras

    from edgeclf.convert.data import load_images

    keras.utils.set_random_seed(seed)
    if data is None:
        data = write_color_folders(root / "data", n_per_class=n_per_class, size=48, classes=tuple(classes), seed=seed)
    split = _split(data, classes)
    run = RunDir(root / "run")
    task = "binary" if len(classes) == 2 else "multiclass"
    models = {}
    for size in sizes:
        spec = PreprocessSpec(size, size)
        x = load_images([(data / rel, label) for rel, label in split.train], spec)
        y = np.array([label for _, label in split.train])
        model = tiny_model(size, len(classes))
        loss = "binary_crossentropy" if task == "binary" else "sparse_categorical_crossentropy"
        model.compile(optimizer=keras.optimizers.Adam(0.01), loss=loss, metrics=["accuracy"])
        model.fit(x, y.astype("float32") if task == "binary" else y, epochs=epochs, batch_size=8, verbose=0)
        path = run.model_path(size)
        path.parent.mkdir(parents=True, exist_ok=True)
        model.save(path)
        models[size] = RunModel(size, str(path.relative_to(run.path)), spec)
    run.write_info(RunInfo(tuple(classes), task, "tiny", str(data.resolve()), models))
    run.write_split(split)
    return run.path


def copy_run(template: Path, dest: Path) -> Path:
    """A private copy of a run (its data stays shared: the run points at it by absolute path)."""
    shutil.copytree(template, dest)
    return dest


@pytest.fixture(scope="session")
def tiny_run_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One trained two-class run per test session (worker); copy it before writing into it."""
    return make_run(tmp_path_factory.mktemp("tiny-run"))


@pytest.fixture()
def tiny_run(tiny_run_template: Path, tmp_path: Path) -> Path:
    """A private copy of the trained run (bundles land in it)."""
    return copy_run(tiny_run_template, tmp_path / "run")
