"""Real bundles for the edge tests: tiny Keras models trained for seconds, converted with the real converter.

`make_bundles(out)` writes, under `out/`:

- `b32-float32/`, `b32-int8/`, `b48-float32/`, `b48-int8/`: a binary horse/human model (shared data set,
  downscaled) at 32 and 48 input, float32 and full-integer int8 with uint8 input/output; at 32 the single
  sigmoid (`--binary-output sigmoid`), at 48 the two probabilities [1 - p, p] (`two-class`, convert's default);
- `rgb32-float32/`, `rgb32-int8/`: a 3-class (blue/green/red) softmax model on generated colour images;
- `images/`: test images (RGBA PNG, JPEG, grayscale, non-square; colour squares) and `expected.json`: per
  bundle, the Keras model's probabilities for the images of its own domain (horse/human photos for `b*`,
  colour squares for `rgb*`), through the TensorFlow preprocessing pipeline. Out-of-domain images are
  left out on purpose: full-int8 saturates outside the calibration range, which is not an edge bug;
- `index.json`: what was written (returned as a dict too).

Run as `python -m tests.make_bundles OUTDIR` (the tflite-runtime venv cannot build them: no TensorFlow).
The converter library (`edgeclf convert`) may replace the conversion here once it lands.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from edgeclf.atomic import write_json
from edgeclf.bundle import Manifest, TensorSpec, write_bundle
from edgeclf.contracts import RuntimeVerdict, Source
from edgeclf.preprocess import PreprocessSpec
from edgeclf.tflite_ops import tflite_runtime_214_verdict

SIZES = (32, 48)
BINARY_LABELS = ("horses", "humans")
COLOR_LABELS = ("blue", "green", "red")


def _shared_data() -> Path:
    from tests.conftest import shared_data_dir

    d = shared_data_dir()
    if not d.is_dir():
        raise SystemExit(f"shared data set missing at {d}; set EDGECLF_SHARED_DATA")
    return d


def _tiny_model(num_outputs: int) -> Any:
    """Fully convolutional, so the same weights run at every input size."""
    import keras

    layers = keras.layers
    inp = keras.Input((None, None, 3))
    x = layers.Conv2D(16, 3, padding="same", activation="relu")(inp)
    x = layers.MaxPooling2D()(x)
    x = layers.Conv2D(32, 3, padding="same", activation="relu")(x)
    x = layers.MaxPooling2D()(x)
    x = layers.Conv2D(32, 3, padding="same", activation="relu")(x)
    x = layers.GlobalMaxPooling2D()(x)
    act = "sigmoid" if num_outputs == 1 else "softmax"
    out = keras.layers.Dense(num_outputs, activation=act)(x)
    model = keras.Model(inp, out)
    loss = "binary_crossentropy" if num_outputs == 1 else "sparse_categorical_crossentropy"
    model.compile(keras.optimizers.Adam(3e-3), loss, metrics=["accuracy"])
    return model


def _at_size(model: Any, size: int) -> Any:
    """The trained weights in a model with a fixed (1, size, size, 3) input, as the converter wants."""
    import keras

    inp = keras.Input((size, size, 3), batch_size=1)
    fixed = keras.Model(inp, model(inp))
    return fixed


def _load(paths: list[Path], spec: PreprocessSpec) -> np.ndarray:
    from edgeclf.train.tfdata import load_and_preprocess

    return np.stack([load_and_preprocess(str(p), spec).numpy() for p in paths])


def convert_model(model: Any, quant: str, rep: np.ndarray) -> bytes:
    """A test bundle's model bytes: float32, dynamic-range, or full int8 with uint8 I/O."""
    import tensorflow as tf

    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    if quant == "dynamic":
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
    if quant == "int8":
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = lambda: ([rep[i:i + 1]] for i in range(len(rep)))
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        conv.inference_input_type = tf.uint8
        conv.inference_output_type = tf.uint8
    return conv.convert()


def tensor_spec(detail: dict[str, Any]) -> TensorSpec:
    scale, zero_point = detail["quantization"]
    return TensorSpec(np.dtype(detail["dtype"]).name, float(scale), int(zero_point))


def _specs(model_bytes: bytes) -> tuple[TensorSpec, TensorSpec]:
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_content=model_bytes)
    return tensor_spec(it.get_input_details()[0]), tensor_spec(it.get_output_details()[0])


def _probabilities(model: Any, x: np.ndarray, binary: bool) -> list[list[float]]:
    p = model.predict(x, verbose=0, batch_size=len(x)).astype(np.float64)
    if binary:
        p = np.concatenate([1 - p, p], axis=1)
    return [[float(v) for v in row] for row in p]


def _binary_files(data: Path) -> tuple[list[Path], np.ndarray, list[Path]]:
    """Every other file for training; test images: two seen in training and one held-out per class."""
    train, labels, test = [], [], []
    for ci, name in enumerate(BINARY_LABELS):
        files = sorted((data / name).glob("*.png"))
        picked = files[:-40:2]
        train += picked
        labels += [ci] * len(picked)
        test += [picked[5], picked[len(picked) // 2], files[-1]]
    return train, np.array(labels, np.float32), test


def _test_images(test: list[Path], color_dir: Path, out: Path) -> list[Path]:
    """Copies of the held-out files plus variants the edge must handle: JPEG, grayscale, non-square."""
    import cv2

    out.mkdir(parents=True, exist_ok=True)
    written = []
    for p in test:
        written.append(out / p.name)
        shutil.copy(p, written[-1])  # RGBA PNG, 300x300
    src = cv2.imread(str(test[-1]), cv2.IMREAD_COLOR)
    extra = {"photo.jpg": src, "gray.png": cv2.cvtColor(src, cv2.COLOR_BGR2GRAY),
             "wide.png": cv2.resize(src, (420, 280), interpolation=cv2.INTER_AREA)}
    for name, img in extra.items():
        cv2.imwrite(str(out / name), img, [cv2.IMWRITE_JPEG_QUALITY, 92] if name.endswith(".jpg") else [])
        written.append(out / name)
    for name in COLOR_LABELS:
        for k, src_png in enumerate(sorted((color_dir / name).glob("*.png"))[-2:]):
            written.append(out / f"color-{name}{k}.png")
            shutil.copy(src_png, written[-1])
    return written


def make_bundles(out: Path, data: Path | None = None) -> dict[str, Any]:
    """Train, convert and write the test bundles, images and expected probabilities under `out`."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import tensorflow as tf

    from edgeclf.convert.binary_output import with_binary_output
    from edgeclf.convert.metadata import add_metadata, model_info
    from tests.conftest import write_color_folders

    tf.config.threading.set_intra_op_parallelism_threads(2)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    keras.utils.set_random_seed(0)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    data = data or _shared_data()

    with tempfile.TemporaryDirectory() as tmp:
        color_dir = write_color_folders(Path(tmp) / "colors", n_per_class=24, size=40, classes=COLOR_LABELS)
        train_files, y_bin, test_files = _binary_files(data)
        color_files = sorted(color_dir.glob("*/*.png"))
        y_col = np.array([COLOR_LABELS.index(p.parent.name) for p in color_files], np.float32)
        images = _test_images(test_files, color_dir, out / "images")

        spec_train = PreprocessSpec(48, 48)
        x_bin = _load(train_files, spec_train)
        binary = _tiny_model(1)
        binary.fit(x_bin, y_bin, epochs=15, batch_size=16, verbose=0, shuffle=True)
        colors = _tiny_model(3)
        colors.fit(_load(color_files, PreprocessSpec(32, 32)), y_col, epochs=15, batch_size=8, verbose=0)

        photos = [p for p in images if not p.name.startswith("color-")]
        squares = [p for p in images if p.name.startswith("color-")]
        jobs = [("b", binary, BINARY_LABELS, "binary", s, train_files, photos) for s in SIZES]
        jobs.append(("rgb", colors, COLOR_LABELS, "multiclass", 32, color_files, squares))
        index: dict[str, Any] = {"bundles": {}, "images": [p.name for p in images]}
        expected: dict[str, dict[str, list[float]]] = {}
        for prefix, model, labels, task, size, rep_files, domain in jobs:
            spec = PreprocessSpec(size, size)
            output = "two-class" if task == "binary" and size == 48 else "sigmoid"
            fixed = with_binary_output(_at_size(model, size), task, output)
            rep = _load(rep_files[:: max(1, len(rep_files) // 64)], spec)
            probs = _probabilities(fixed, _load(domain, spec), task == "binary" and output == "sigmoid")
            for quant in ("float32", "int8"):
                name = f"{prefix}{size}-{quant}"
                model_bytes = convert_model(fixed, quant, rep)
                # standard TFLite metadata, as `edgeclf convert` writes it (the edge must load it everywhere)
                model_bytes = add_metadata(model_bytes, model_info(labels, task, output, spec, "tiny-test", name))
                tin, tout = _specs(model_bytes)  # loads on ai-edge-litert, or raises
                verdict = tflite_runtime_214_verdict(model_bytes)
                manifest = Manifest(
                    labels=labels, task=task, positive_label=labels[1] if task == "binary" else None,
                    binary_output=output,
                    preprocess=spec, input=tin, output=tout,
                    source=Source(run="tests/make_bundles", arch="tiny-test", size=size, quantization=quant),
                    runtimes={"ai-edge-litert": RuntimeVerdict(True, "loaded by tests/make_bundles"),
                              verdict.runtime: verdict.runtime_verdict()})
                write_bundle(out / name, model_bytes, manifest)
                expected[name] = {p.name: pr for p, pr in zip(domain, probs)}
                index["bundles"][name] = {"size": size, "quantization": quant, "task": task, "labels": list(labels)}
    write_json(out / "images" / "expected.json", expected)
    write_json(out / "index.json", index)
    return index


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m tests.make_bundles OUTDIR", file=sys.stderr)
        return 2
    index = make_bundles(Path(argv[0]))
    print(json.dumps(sorted(index["bundles"])))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
