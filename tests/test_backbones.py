"""Pretrained backbones (`--arch mobilenetv3-small|...`, `--weights imagenet|none|FILE`), offline, end to end.

Each backbone of the registry: trains from a weights file this test saves itself (head epoch, then one
fine-tuning epoch: frozen layers and BatchNorm statistics must still be the file's, the top block must have
moved), converts to int8 within the accuracy gate, and the bundle runs through `edgeclf classify` under
ai-edge-litert and, where its manifest says it loads, under tflite-runtime 2.14 (its own venv, no TensorFlow),
with the same probabilities. From `--weights none` it trains one epoch with everything trainable (BatchNorm
statistics move). `--weights imagenet` without network: one line, non-zero exit, no run directory. Tiny: 32 px,
24 generated colour images, 1-2 epochs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from edgeclf.cli import app
from edgeclf.rundir import RunDir
from edgeclf.train.backbones import BACKBONES, KerasFile

from .conftest import REPO, write_color_folders
from .test_tflite_ops import tflite_runtime_python

runner = CliRunner()
SIZE = 32
FAST = ["--size", str(SIZE), "--batch-size", "8", "--no-augment", "--seed", "5"]
NAMES = sorted(BACKBONES)


@pytest.fixture(scope="module")
def colors(tmp_path_factory) -> Path:
    return write_color_folders(tmp_path_factory.mktemp("colors"), n_per_class=12, size=40)


def _backbone_of(run: Path):  # type: ignore[no-untyped-def]
    from edgeclf.train.modelio import load_keras

    return load_keras(RunDir(run).model_path(SIZE)).get_layer("backbone")


def _saved_weights(name: str, path: Path) -> dict[str, list[np.ndarray]]:
    """A seeded random build of the backbone, saved as a .weights.h5 (what another machine would send)."""
    import keras

    keras.utils.set_random_seed(11)
    model = BACKBONES[name].build(SIZE)
    model.save_weights(str(path))
    return {layer.name: [np.array(w) for w in layer.get_weights()] for layer in model.layers if layer.weights}


def _classify(python: str, bundle: Path, images: list[Path]) -> list[dict]:
    env = {**os.environ, "PYTHONPATH": ""}
    r = subprocess.run([python, "-m", "edgeclf", "classify", str(bundle), *map(str, images), "--json",
                        "--unknown", "off", "--top-k", "2", "--threads", "1"],
                       capture_output=True, text=True, timeout=300, env=env, cwd=REPO)
    assert r.returncode == 0, r.stderr[-2000:]
    return [json.loads(line) for line in r.stdout.splitlines() if line.strip()]


def _probs(rows: list[dict]) -> np.ndarray:
    return np.array([r["probabilities"] for r in rows], dtype=float)


@pytest.mark.parametrize("name", NAMES)
def test_from_weights_file_fine_tunes_top_block_converts_and_runs(name: str, colors: Path, tmp_path: Path) -> None:
    wfile = tmp_path / f"{name}.weights.h5"
    saved = _saved_weights(name, wfile)
    run = tmp_path / "run"
    r = runner.invoke(app, ["train", str(colors), "--arch", name, "--weights", str(wfile), "--out", str(run),
                            "--epochs", "2", "--head-epochs", "1", "--fine-tune-blocks", "1", "--fine-tune-lr",
                            "0.001", *FAST])
    assert r.exit_code == 0, r.output
    assert json.loads((run / "run.json").read_text())["extra"]["weights"] == str(wfile)

    net = _backbone_of(run)
    first_tuned = BACKBONES[name].blocks[-1]
    names = [layer.name for layer in net.layers]
    tuned = set(names[names.index(first_tuned):])
    moved, kept = [], []
    for layer in net.layers:
        if layer.name not in saved:
            continue
        now = [np.array(w) for w in layer.get_weights()]
        same = all(np.array_equal(a, b) for a, b in zip(now, saved[layer.name]))
        if layer.name in tuned and "BatchNormalization" not in type(layer).__name__:
            moved.append((layer.name, not same))
        else:
            kept.append((layer.name, same))
    assert kept and all(same for _, same in kept), [n for n, s in kept if not s]  # frozen layers, every BN
    assert moved and any(m for _, m in moved), moved  # the fine-tuned top block trained

    c = runner.invoke(app, ["convert", str(run), "--quantize", "int8"])
    assert c.exit_code == 0, c.output
    bundle = run / "bundles" / f"{SIZE}-int8"
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["metrics"]["status"] != "rejected"
    assert manifest["source"]["arch"] == name
    runtimes = manifest["runtimes"]
    assert runtimes["ai-edge-litert"]["loads"] is True
    images = sorted((colors / "red").iterdir())[:2] + sorted((colors / "blue").iterdir())[:2]
    litert = _classify(sys.executable, bundle, images)
    assert len(litert) == 4
    if runtimes["tflite-runtime-2.14"]["loads"]:
        tfl = _classify(tflite_runtime_python(), bundle, images)
        np.testing.assert_allclose(_probs(tfl), _probs(litert), atol=0.02)
    else:  # the manifest names what is missing
        assert "needs" in runtimes["tflite-runtime-2.14"]["why"]


@pytest.mark.parametrize("name", NAMES)
def test_from_none_trains_everything(name: str, colors: Path, tmp_path: Path) -> None:
    import keras

    run = tmp_path / "run"
    r = runner.invoke(app, ["train", str(colors), "--arch", name, "--weights", "none", "--out", str(run),
                            "--epochs", "1", *FAST])
    assert r.exit_code == 0, r.output
    bns = [layer for layer in _backbone_of(run).layers if isinstance(layer, keras.layers.BatchNormalization)]
    # from scratch: BatchNorm trains and precise BN sets its statistics (a fresh BN has mean 0, variance 1)
    assert bns and all(layer.trainable for layer in bns)
    assert any(np.abs(np.array(layer.moving_mean)).max() > 0 for layer in bns)


KERAS_NAMES = [n for n in NAMES if isinstance(BACKBONES[n].imagenet, KerasFile)]
OFFLINE = {"https_proxy": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9", "no_proxy": "", "NO_PROXY": ""}
# port 9 refuses connections: no network, whatever this machine has


def test_imagenet_offline_one_line_on_stderr_no_run_dir(colors: Path, tmp_path: Path) -> None:
    """The real process: one line on stderr, exit code 2, no run directory (not even runs/)."""
    out = tmp_path / "run"
    env = {**os.environ, "KERAS_HOME": str(tmp_path / "keras-home"), **OFFLINE}
    r = subprocess.run([sys.executable, "-m", "edgeclf", "train", str(colors), "--arch", "mobilenetv3-small",
                        *FAST], capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("error: --weights imagenet: cannot download") and "no network" in lines[0]
    assert f"curl -fLO {BACKBONES['mobilenetv3-small'].imagenet.url}" in lines[0]
    assert not out.exists() and not (tmp_path / "runs").exists()


@pytest.mark.parametrize("name", KERAS_NAMES)
def test_imagenet_offline_names_the_file_to_fetch(name: str, colors: Path, tmp_path: Path, monkeypatch) -> None:
    for k, v in {"KERAS_HOME": str(tmp_path / "keras-home"), **OFFLINE}.items():
        monkeypatch.setenv(k, v)
    out = tmp_path / "run"
    r = runner.invoke(app, ["train", str(colors), "--arch", name, "--weights", "imagenet", "--out", str(out), *FAST])
    assert r.exit_code == 2
    src = BACKBONES[name].imagenet
    assert src.url in r.output and f"--weights {src.file_name}" in r.output
    assert not out.exists() and not (tmp_path / "keras-home" / "models" / src.file_name).exists()


def test_wrong_weights_file_is_one_line_and_no_run_dir(colors: Path, tmp_path: Path) -> None:
    wfile = tmp_path / "small.weights.h5"
    _saved_weights("mobilenetv3-small", wfile)
    out = tmp_path / "run"
    r = runner.invoke(app, ["train", str(colors), "--arch", "mobilenetv2", "--weights", str(wfile), "--out", str(out),
                            *FAST])
    assert r.exit_code != 0
    assert f"--weights {wfile}: not weights of mobilenetv2" in r.output
    assert not out.exists()
    r = runner.invoke(app, ["train", str(colors), "--arch", "mobilenetv2", "--weights", str(tmp_path / "nope.h5"),
                            "--out", str(out), *FAST])
    assert r.exit_code != 0 and "no such file" in r.output and not out.exists()


def test_weights_only_for_pretrained_archs(colors: Path, tmp_path: Path) -> None:
    r = runner.invoke(app, ["train", str(colors), "--arch", "edge", "--weights", "imagenet",
                            "--out", str(tmp_path / "run"), *FAST])
    assert r.exit_code != 0 and "trains from scratch" in r.output and not (tmp_path / "run").exists()
