"""Conversion refuses what it must and loses nothing: issue 7 cases 5, 10, 13 for `edgeclf convert`."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from edgeclf.bundle import load_bundle
from edgeclf.cli import app
from edgeclf.convert import ConvertConfig, QuantizationKind, convert_run
from edgeclf.errors import DataError, ModelError
from edgeclf.rundir import RunDir

from .conftest import REPO
from .runfixture import tiny_model, tiny_run, tiny_run_template  # noqa: F401  (fixtures)

pytestmark = pytest.mark.xdist_group("convert")
runner = CliRunner()


def _one_line_error(r, exit_code: int = 1) -> str:
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    assert r.exit_code == exit_code, r.output
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in r.output, r.output
    return lines[0]


def _set_model_file(run: Path, size: int, rel: str) -> None:
    f = run / "run.json"
    d = json.loads(f.read_text())
    d["models"][str(size)]["file"] = rel
    f.write_text(json.dumps(d))


def test_moved_data_folder_names_the_folder_and_the_flag(tiny_run: Path, tmp_path: Path) -> None:
    data = Path(RunDir(tiny_run).read_info().data_dir)
    moved = tmp_path / "moved-data"
    shutil.copytree(data, moved)
    f = tiny_run / "run.json"
    d = json.loads(f.read_text())
    d["data_dir"] = str(tmp_path / "gone")
    f.write_text(json.dumps(d))
    line = _one_line_error(runner.invoke(app, ["convert", str(tiny_run), "--quantize"]))
    assert str(tmp_path / "gone") in line and "--data" in line and "missing" in line
    assert not (tiny_run / "bundles" / "24-int8").exists()
    # the fix the message names works
    r = runner.invoke(app, ["convert", str(tiny_run), "--quantize", "--size", "24", "--data", str(moved),
                            "--calibration", "10"])
    assert r.exit_code == 0, r.output
    assert load_bundle(tiny_run / "bundles" / "24-int8").manifest.metrics.n > 0
    # a --data folder that is not the run's: the missing files are counted
    other = tmp_path / "other"
    (other / "blue").mkdir(parents=True)
    line = _one_line_error(runner.invoke(app, ["convert", str(tiny_run), "--data", str(other)]))
    assert "images of the run's split are missing" in line and str(other) in line


def test_lambda_layer_is_refused_without_deserializing(tiny_run: Path) -> None:
    import keras
    from keras import layers

    inputs = keras.Input((24, 24, 3))
    x = layers.Lambda(lambda t: t * 2.0, name="doubler")(inputs)
    outputs = layers.Dense(1, activation="sigmoid")(layers.GlobalAveragePooling2D()(x))
    keras.Model(inputs, outputs).save(tiny_run / "models" / "24.keras")
    with pytest.raises(ModelError, match=r"Lambda layer 'doubler'.*refused \(safe_mode stays on\)"):
        convert_run(tiny_run, ConvertConfig(sizes=(24,)))
    line = _one_line_error(runner.invoke(app, ["convert", str(tiny_run), "--size", "24"]))
    assert "24.keras" in line and "Lambda" in line


def test_h5_model_is_refused(tiny_run: Path) -> None:
    model = tiny_model(24, 2)
    model.save(tiny_run / "models" / "24.h5")
    _set_model_file(tiny_run, 24, "models/24.h5")
    line = _one_line_error(runner.invoke(app, ["convert", str(tiny_run), "--size", "24"]))
    assert "24.h5" in line and "legacy HDF5" in line and ".keras" in line
    # HDF5 bytes under a .keras name are caught by their signature, not the name
    shutil.copy(tiny_run / "models" / "24.h5", tiny_run / "models" / "24.keras")
    _set_model_file(tiny_run, 24, "models/24.keras")
    with pytest.raises(ModelError, match="legacy HDF5"):
        convert_run(tiny_run, ConvertConfig(sizes=(24,)))


def test_unwritable_out_is_refused_before_any_work(tiny_run: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    # the data folder is gone too: the --out error must come first, before data or model work
    f = tiny_run / "run.json"
    d = json.loads(f.read_text())
    d["data_dir"] = str(tmp_path / "gone")
    f.write_text(json.dumps(d))
    for out in (blocker, blocker / "bundles"):
        line = _one_line_error(runner.invoke(app, ["convert", str(tiny_run), "--quantize", "--out", str(out)]), 2)
        assert f"--out {out}" in line and "--out" in line.split(";")[-1]
    assert blocker.read_text() == "not a folder"


KILLER = r"""
import os, signal, sys
mode, run = sys.argv[1], sys.argv[2]
real_fsync, real_replace = os.fsync, os.replace

def die():
    os.kill(os.getpid(), signal.SIGKILL)

def fsync(fd):  # SIGKILL while the new 24-float16 bundle is half-way: files in its temp folder, not renamed
    real_fsync(fd)
    if mode == "write" and "/.24-float16." in os.readlink(f"/proc/self/fd/{fd}"):
        die()

def replace(src, dst):  # SIGKILL in the instant the old bundle is moved aside and the new one not yet in
    real_replace(src, dst)
    if mode == "swap" and os.path.basename(str(dst)).startswith(".24-float16.") and str(dst).endswith(".old"):
        die()

os.fsync, os.replace = fsync, replace
from edgeclf.cli import app
app(["convert", run, "--size", "24", "--quantize", "int8", "--quantize", "float16", "--calibration", "10"],
    prog_name="edgeclf")
"""


@pytest.mark.parametrize("mode", ["write", "swap"])
def test_sigkill_during_conversion_keeps_the_previous_bundle(tiny_run: Path, mode: str, tmp_path: Path) -> None:
    kinds = (QuantizationKind.for_int8(calibration=10), QuantizationKind.for_float16())
    convert_run(tiny_run, ConvertConfig(kinds=kinds, sizes=(24,)))
    bundles = tiny_run / "bundles"
    before = load_bundle(bundles / "24-float16").manifest
    scratch = tmp_path / "tmpdir"  # the killed process's temp SavedModel cannot be removed: keep it out of /tmp
    scratch.mkdir()
    p = subprocess.run([sys.executable, "-c", KILLER, mode, str(tiny_run)], cwd=REPO, capture_output=True,
                       text=True, timeout=300, env={**os.environ, "TMPDIR": str(scratch)})
    assert p.returncode == -signal.SIGKILL, p.stderr
    assert load_bundle(bundles / "24-int8").manifest.source.quantization == "int8"  # written before the kill
    leftovers = [x.name for x in bundles.iterdir() if x.name.startswith(".24-float16.")]
    if mode == "write":
        assert load_bundle(bundles / "24-float16").manifest == before  # the old one, complete
        assert [x for x in leftovers if x.endswith(".tmp")]
    else:
        assert not (bundles / "24-float16").exists() and [x for x in leftovers if x.endswith(".old")]
    # the next conversion (here of another variant) tidies up: temp removed, an interrupted swap undone
    convert_run(tiny_run, ConvertConfig(kinds=(QuantizationKind.for_float32(),), sizes=(24,)))
    assert load_bundle(bundles / "24-float16").manifest == before
    assert not [x for x in bundles.iterdir() if x.name.startswith(".24-")]


def test_data_error_is_typed(tiny_run: Path, tmp_path: Path) -> None:
    with pytest.raises(DataError, match="--data .*no such folder"):
        convert_run(tiny_run, ConvertConfig(data=tmp_path / "nowhere"))
