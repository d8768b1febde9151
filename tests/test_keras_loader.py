"""One safe Keras loader (edgeclf.train.modelio): an .h5 renamed .keras, a .keras zip with a Lambda layer and
a missing file each give one clear line, through `edgeclf train --resume` (the backup it restores and the
best model it re-measures) and through `edgeclf convert` — the same check, not two copies of it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Callable

import pytest
from typer.testing import CliRunner

from edgeclf.cli import app
from edgeclf.errors import ModelError
from edgeclf.rundir import RUN_FILE

from .conftest import write_color_folders
from .runfixture import tiny_run, tiny_run_template  # noqa: F401  (fixtures)

pytestmark = pytest.mark.xdist_group("convert")
runner = CliRunner()
SIZE = 32


def _one_line(r) -> str:
    """The one error line (train logs its progress before it; the error is the only `error:` line, and last)."""
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("error: ")]
    assert r.exit_code == 1, r.output
    assert len(errors) == 1 and lines[-1] == errors[0] and "Traceback" not in r.output, r.output
    return errors[0]


def _h5(path: Path) -> None:
    """Real HDF5 bytes (a Keras model saved as .h5) under the given name."""
    import keras

    tmp = path.with_name("tmp-model.h5")
    keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)]).save(tmp)
    tmp.replace(path)


def _lambda(path: Path) -> None:
    import keras

    inp = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Lambda(lambda t: t * 2.0, name="doubler")(inp)
    keras.Model(inp, keras.layers.Dense(1, activation="sigmoid")(keras.layers.GlobalAveragePooling2D()(x))).save(path)


def _missing(path: Path) -> None:
    path.unlink(missing_ok=True)


def _nested(depth: int) -> Callable[[Path], None]:
    """A .keras archive whose config.json nests `depth` lists deep (json itself gives up at ~1,000 levels)."""
    def spoil(path: Path) -> None:
        import zipfile

        path.unlink(missing_ok=True)
        with zipfile.ZipFile(path, "w") as z:
            z.writestr("config.json", "[" * depth + "]" * depth)
            z.writestr("metadata.json", "{}")
    return spoil


CASES: dict[str, tuple[Callable[[Path], None], tuple[str, ...]]] = {
    "deep-json": (_nested(100_000), ("not a valid .keras file", "nested too deeply", "train again")),
    "deep-tree": (_nested(900), ("not a valid .keras file", "nested over 200 levels", "train again")),
    "h5-renamed": (_h5, ("legacy HDF5", "HDF5 (.h5) models are refused", "re-save it as .keras")),
    "lambda": (_lambda, ("Lambda layer 'doubler'", "refused (safe_mode stays on)", "standard Keras layers")),
    "missing": (_missing, ("no such model file", "train again")),
}


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real `edgeclf train` run (one size, one epoch)."""
    root = tmp_path_factory.mktemp("loader")
    data = write_color_folders(root / "data", n_per_class=8, size=40)
    out = root / "run"
    r = runner.invoke(app, ["-q", "train", "--arch", "edge", str(data), "--out", str(out), "--size", str(SIZE), "--epochs", "1",
                            "--batch-size", "8", "--no-augment"])
    assert r.exit_code == 0, r.output
    return out


def _killed_after_epoch_1(trained: Path, dest: Path) -> Path:
    """The run as a SIGKILL after epoch 1 leaves it: no run.json, state pointing at backup-1.keras."""
    run = shutil.copytree(trained, dest)
    (run / RUN_FILE).unlink()
    sdir = run / "state" / str(SIZE)
    state = json.loads((sdir / "state.json").read_text())
    state.update(status="running", epoch=1, backup="backup-1.keras", result={})
    (sdir / "state.json").write_text(json.dumps(state))
    shutil.copy(run / "models" / f"{SIZE}.keras", sdir / "backup-1.keras")
    return run


@pytest.mark.parametrize("case", CASES)
def test_resume_refuses_a_bad_backup_in_one_line(trained: Path, tmp_path: Path, case: str) -> None:
    spoil, says = CASES[case]
    run = _killed_after_epoch_1(trained, tmp_path / "run")
    backup = run / "state" / str(SIZE) / "backup-1.keras"
    spoil(backup)
    line = _one_line(runner.invoke(app, ["train", "--resume", str(run)]))
    assert str(backup) in line and all(s in line for s in says), line


@pytest.mark.parametrize("case", ["h5-renamed", "lambda"])
def test_resume_refuses_a_bad_best_model_in_one_line(trained: Path, tmp_path: Path, case: str) -> None:
    spoil, says = CASES[case]
    run = _killed_after_epoch_1(trained, tmp_path / "run")
    best = run / "models" / f"{SIZE}.keras"
    spoil(best)
    line = _one_line(runner.invoke(app, ["train", "--resume", str(run)]))
    assert str(best) in line and all(s in line for s in says), line


def test_the_killed_run_fixture_resumes_when_nothing_is_spoiled(trained: Path, tmp_path: Path) -> None:
    run = _killed_after_epoch_1(trained, tmp_path / "run")
    r = runner.invoke(app, ["-q", "train", "--resume", str(run)])
    assert r.exit_code == 0, r.output
    assert (run / RUN_FILE).is_file()


@pytest.mark.parametrize("case", CASES)
def test_convert_refuses_in_one_line(tiny_run: Path, case: str) -> None:
    spoil, says = CASES[case]
    model = tiny_run / "models" / f"{SIZE}.keras"
    spoil(model)
    line = _one_line(runner.invoke(app, ["convert", str(tiny_run), "--size", str(SIZE)]))
    assert str(model) in line and all(s in line for s in says), line


@pytest.mark.parametrize("case", CASES)
def test_every_caller_gets_the_same_error(tmp_path: Path, case: str) -> None:
    from edgeclf.convert.export import load_keras as convert_load
    from edgeclf.train.modelio import check_keras_file, load_keras

    spoil, _ = CASES[case]
    path = tmp_path / "m.keras"
    path.write_bytes(b"")
    spoil(path)
    messages = set()
    for call in (check_keras_file, load_keras, convert_load, lambda p: load_keras(p, compile=True)):
        with pytest.raises(ModelError) as e:
            call(path)
        messages.add(str(e.value))
    assert len(messages) == 1, messages


def test_the_bench_and_convert_loaders_are_the_trainers() -> None:
    import inspect

    import edgeclf.bench.run as bench_run
    import edgeclf.convert.export as export
    from edgeclf.train import modelio

    assert export.check_keras_file is modelio.check_keras_file
    assert "modelio.load_keras(" in inspect.getsource(export.load_keras)
    assert "load_keras" in inspect.getsource(bench_run._load_keras)
    assert not hasattr(export, "HDF5_MAGIC") and not hasattr(export, "_find_unsafe")
