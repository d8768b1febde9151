"""Training speed settings (#15): `--precision`, the uint8 cache, whole-batch augmentation, the thread line.

A model trained in mixed bfloat16 is saved float32 (no mixed policy in the file), converts to int8 within the
accuracy gate, and its bundle is the same kind as a float32-trained one's: the same TFLite operators and tensor
types, the same manifest fields. Tiny: 32 px, 24 generated colour images, 1 epoch.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from edgeclf.cli import app
from edgeclf.errors import UsageError
from edgeclf.preprocess import PreprocessSpec
from edgeclf.rundir import CONFIG_FILE, RunDir
from edgeclf.tflite_file import read_op_codes

from .conftest import write_color_folders

runner = CliRunner()
SIZE = 32


@pytest.fixture(scope="module")
def colors(tmp_path_factory) -> Path:
    return write_color_folders(tmp_path_factory.mktemp("colors"), n_per_class=12, size=40)


def _tensor_types(model: Path) -> list[str]:
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(model))
    return sorted({np.dtype(t["dtype"]).name for t in it.get_tensor_details()})


def _train_and_convert(colors: Path, out: Path, precision: str) -> tuple[Path, str]:
    r = runner.invoke(app, ["train", str(colors), "--arch", "edge", "--size", str(SIZE), "--epochs", "1",
                            "--batch-size", "8", "--seed", "3", "--precision", precision, "--out", str(out)])
    assert r.exit_code == 0, r.output
    c = runner.invoke(app, ["convert", str(out), "--quantize", "int8"])
    assert c.exit_code == 0, c.output
    return out / "bundles" / f"{SIZE}-int8", r.output


def test_bfloat16_training_saves_float32_and_converts_like_float32(colors: Path, tmp_path: Path) -> None:
    b16, said = _train_and_convert(colors, tmp_path / "b16", "bfloat16")
    assert "computing in mixed_bfloat16 (--precision bfloat16); the saved model is float32" in said
    assert "threads: " in said and "intra-op" in said
    f32, _ = _train_and_convert(colors, tmp_path / "f32", "float32")

    saved = zipfile.ZipFile(RunDir(tmp_path / "b16").model_path(SIZE)).read("config.json").decode()
    assert "mixed_bfloat16" not in saved and "float32" in saved
    assert json.loads((tmp_path / "b16" / CONFIG_FILE).read_text())["precision"] == "bfloat16"  # recorded

    m16, m32 = (json.loads((b / "manifest.json").read_text()) for b in (b16, f32))
    assert m16["metrics"]["status"] != "rejected"
    kind = lambda t: {k: v for k, v in t.items() if k not in ("scale", "zero_point")}  # noqa: E731 (calibrated)
    assert set(m16) == set(m32) and all(kind(m16[k]) == kind(m32[k]) for k in ("input", "output"))
    ops16, ops32 = ([o.name for o in read_op_codes((b / "model.tflite").read_bytes())] for b in (b16, f32))
    assert ops16 == ops32 and ops16
    assert _tensor_types(b16 / "model.tflite") == _tensor_types(f32 / "model.tflite")
    assert "bfloat16" not in _tensor_types(b16 / "model.tflite")


def test_precision_is_checked_and_auto_follows_the_measurements(monkeypatch: pytest.MonkeyPatch) -> None:
    from edgeclf.train import precision
    from edgeclf.train.config import TrainConfig

    with pytest.raises(UsageError, match=r"--precision 'half' is not known; expected one of auto, float32, bfloat16"):
        TrainConfig(data_dir="x", precision="half")
    assert precision.choose("float16", "edge", 150).policy == "mixed_float16"
    monkeypatch.setattr(precision, "_gpu", lambda: False)
    monkeypatch.setattr(precision, "BF16_MEASURED", {"seed": {150: True, 300: True}, "edge": {150: True, 300: False}})
    if precision.cpu_bf16():  # this machine: AVX-512 BF16
        assert precision.choose("auto", "seed", 224).policy == "mixed_bfloat16"
        assert precision.choose("auto", "edge", 160).policy == "mixed_bfloat16"
        assert precision.choose("auto", "edge", 280).policy == "float32"
        assert "not measured" in precision.choose("auto", "course", 150).why
    monkeypatch.setattr(precision, "cpu_bf16", lambda: "")
    assert precision.choose("auto", "seed", 150) == precision.Precision(
        "float32", "auto: this CPU has no bfloat16 instructions")
    monkeypatch.setattr(precision, "_gpu", lambda: True)  # no GPU here: the GPU branch's rule only
    assert precision.choose("auto", "seed", 150).policy == "mixed_float16"


def test_cache_is_uint8_and_batch_augmentation_draws_per_image(colors: Path) -> None:
    import tensorflow as tf

    from edgeclf.train.augment import AugmentSpec, augment_batch
    from edgeclf.train.tfdata import _base, cache_bytes

    spec = PreprocessSpec(SIZE, SIZE)
    files = sorted(str(p) for p in colors.glob("*/*.png"))[:4]
    x, _ = next(iter(_base(files, [0] * 4, spec, 2, True)))
    assert x.dtype == tf.uint8 and x.shape == (SIZE, SIZE, 3)
    assert cache_bytes(1000, spec) == 1000 * SIZE * SIZE * 3  # a quarter of float32's
    same = tf.repeat(tf.cast(x, tf.float32)[None] / 255.0, 6, axis=0)
    out = augment_batch(same, tf.constant([4, 0], tf.int64), AugmentSpec(), 0.0, 1.0).numpy()
    again = augment_batch(same, tf.constant([4, 0], tf.int64), AugmentSpec(), 0.0, 1.0).numpy()
    other = augment_batch(same, tf.constant([4, 1], tf.int64), AugmentSpec(), 0.0, 1.0).numpy()
    assert out.shape == same.shape and out.min() >= 0.0 and out.max() <= 1.0
    assert np.array_equal(out, again) and not np.allclose(out, other)
    assert all(not np.allclose(out[0], out[i]) for i in range(1, 6))  # one image, six different draws
