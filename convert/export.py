"""Keras model -> TFLite flatbuffer bytes, one quantization kind at a time.

The trained model is loaded only from a `.keras` archive with `safe_mode=True`: legacy HDF5 files and
Lambda layers (arbitrary Python) are refused before Keras deserializes anything. The model is exported
with a fixed batch of 1 (what the edge feeds), `training=False`, through Keras' ExportArchive and the
TensorFlow Lite converter's SavedModel path (what `from_keras_model` does for Keras 3, minus the
dynamic batch that adds SHAPE/STRIDED_SLICE/PACK ops around every Flatten).
"""

from __future__ import annotations

import functools
import json
import logging
import tempfile
import zipfile
from pathlib import Path
from typing import Any, Callable, Iterator

from edgeclf.errors import ModelError, RunError

from .quantize import QuantizationKind
from .quiet import quiet_native

log = logging.getLogger(__name__)

HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
UNSAFE_LAYERS = ("Lambda",)


def _find_unsafe(config: Any) -> str | None:
    """The name of the first Lambda layer in a Keras config tree, or None."""
    if isinstance(config, dict):
        if config.get("class_name") in UNSAFE_LAYERS:
            inner = config.get("config")
            name = inner.get("name") if isinstance(inner, dict) else None
            return f"{config['class_name']} layer {name!r}" if name else f"{config['class_name']} layer"
        for v in config.values():
            found = _find_unsafe(v)
            if found:
                return found
    elif isinstance(config, list):
        for v in config:
            found = _find_unsafe(v)
            if found:
                return found
    return None


def check_keras_file(path: Path) -> None:
    """Refuse what `safe_mode` must never see: HDF5 files, non-archives, Lambda layers."""
    if not path.is_file():
        raise RunError(f"{path}: no such model file; the run is incomplete; train again")
    with open(path, "rb") as fh:
        head = fh.read(8)
    if path.suffix.lower() in (".h5", ".hdf5") or head == HDF5_MAGIC:
        raise ModelError(f"{path}: is a legacy HDF5 (.h5) model; edgeclf only loads .keras archives with "
                         "safe_mode=True; re-save it as .keras (model.save('model.keras')) where you trust it")
    if path.suffix.lower() != ".keras" or not zipfile.is_zipfile(path):
        raise ModelError(f"{path}: is not a .keras model archive; expected the models/<size>.keras that "
                         "`edgeclf train` writes")
    try:
        with zipfile.ZipFile(path) as z:
            config = json.loads(z.read("config.json"))
    except (KeyError, zipfile.BadZipFile, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ModelError(f"{path}: damaged .keras archive ({e}); train again") from None
    unsafe = _find_unsafe(config)
    if unsafe:
        raise ModelError(f"{path}: has a {unsafe}; Lambda layers run arbitrary Python and are refused "
                         "(safe_mode stays on); rebuild the model with standard Keras layers")


def load_keras(path: Path, quiet: bool = True) -> Any:
    """The trained model, loaded with safe_mode=True after `check_keras_file`."""
    check_keras_file(path)
    with quiet_native(quiet):
        import keras

        try:
            return keras.saving.load_model(path, compile=False, safe_mode=True)
        except Exception as e:  # Keras raises ValueError/TypeError with long multi-line texts
            first = (str(e).strip().splitlines() or [type(e).__name__])[0]
            raise ModelError(f"{path}: Keras could not load it safely ({first}); "
                             "train again with this edgeclf") from None


def export_saved_model(model: Any, size: int, out_dir: Path, quiet: bool = True) -> Path:
    """Write the model's inference function (batch 1, training=False) as a SavedModel in `out_dir`."""
    with quiet_native(quiet):
        import keras
        import tensorflow as tf

        archive = keras.export.ExportArchive()
        archive.track(model)
        spec = tf.TensorSpec([1, size, size, 3], tf.float32, name="image")
        archive.add_endpoint("serve", functools.partial(model.__call__, training=False), [spec])
        archive.write_out(str(out_dir), verbose=False)
    return out_dir


def to_tflite(saved_model: Path, kind: QuantizationKind,
              representative: Callable[[], Iterator[list[Any]]] | None = None, quiet: bool = True) -> bytes:
    """Convert an exported SavedModel with the current TFLite converter, configured for `kind`."""
    with quiet_native(quiet) as cap:
        import tensorflow as tf

        converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model))
        kind.configure(converter, representative)
        try:
            return bytes(converter.convert())
        except Exception as e:
            first = (str(e).strip().splitlines() or [type(e).__name__])[0]
            err = e
    raise ModelError(f"TFLite conversion to {kind.label} failed: {first}"
                     + (f" [converter said: {cap.tail(3)}]" if cap.tail(3) else "")
                     + "; run with -v for the converter's log") from err


def convert_keras(model: Any, size: int, kinds: tuple[QuantizationKind, ...],
                  representative: Callable[[], Iterator[list[Any]]] | None,
                  quiet: bool = True) -> Iterator[tuple[QuantizationKind, bytes]]:
    """Export once, then yield (kind, tflite bytes) per kind; the temp SavedModel is removed at the end."""
    with tempfile.TemporaryDirectory(prefix="edgeclf-export-") as tmp:
        saved = export_saved_model(model, size, Path(tmp) / "saved_model", quiet)
        for kind in kinds:
            yield kind, to_tflite(saved, kind, representative if kind.needs_data else None, quiet)
