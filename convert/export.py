"""Keras model -> TFLite flatbuffer bytes, one quantization kind at a time.

The trained model is loaded by edgeclf's one safe loader (`edgeclf.train.modelio`: `.keras` only,
`safe_mode=True`, HDF5 and Lambda layers refused before Keras deserializes anything). The model is exported
with a fixed batch of 1 (what the edge feeds), `training=False`, through Keras' ExportArchive and the
TensorFlow Lite converter's SavedModel path (what `from_keras_model` does for Keras 3, minus the
dynamic batch that adds SHAPE/STRIDED_SLICE/PACK ops around every Flatten).
"""

from __future__ import annotations

import functools
import logging
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator

from edgeclf.errors import ModelError, disk_full
from edgeclf.native_output import quiet_native
from edgeclf.train import modelio
from edgeclf.train.modelio import check_keras_file

from .quantize import QuantizationKind

log = logging.getLogger(__name__)

__all__ = ["check_keras_file", "convert_keras", "export_saved_model", "load_keras", "to_tflite"]


def load_keras(path: Path, quiet: bool = True) -> Any:
    """The trained model through `edgeclf.train.modelio.load_keras` (the one safe loader), natively quiet."""
    with quiet_native(quiet):
        return modelio.load_keras(path)


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
        try:
            saved = export_saved_model(model, size, Path(tmp) / "saved_model", quiet)
        except Exception as e:  # TensorFlow reports a full $TMPDIR as its own error type, with the OS's text
            full = disk_full(e, f"{tempfile.gettempdir()} (the temporary SavedModel; set TMPDIR to use another folder)")
            if full is None:
                raise
            raise full from None
        for kind in kinds:
            yield kind, to_tflite(saved, kind, representative if kind.needs_data else None, quiet)
