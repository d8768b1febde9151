"""Load and save Keras models safely: `.keras` only, safe mode on, no Lambda layers."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any, Iterator

from edgeclf.errors import ModelError


def _layer_classes(config: Any) -> Iterator[str]:
    if isinstance(config, dict):
        if "class_name" in config and isinstance(config["class_name"], str):
            yield config["class_name"]
        for v in config.values():
            yield from _layer_classes(v)
    elif isinstance(config, list):
        for v in config:
            yield from _layer_classes(v)


def check_keras_file(path: Path) -> None:
    """Refuse anything but a `.keras` zip whose config holds no Lambda layer, before Keras reads it."""
    if path.suffix.lower() in (".h5", ".hdf5"):
        raise ModelError(f"{path}: HDF5 (.h5) models are refused (they can carry code); save it as .keras")
    if path.suffix.lower() != ".keras":
        raise ModelError(f"{path}: expected a Keras v3 `.keras` file")
    try:
        with zipfile.ZipFile(path) as z:
            config = json.loads(z.read("config.json"))
    except FileNotFoundError:
        raise ModelError(f"{path}: no such model file") from None
    except (zipfile.BadZipFile, KeyError, ValueError) as e:
        raise ModelError(f"{path}: not a valid .keras file ({e}); it is damaged or not a Keras model") from None
    if "Lambda" in set(_layer_classes(config)):
        raise ModelError(f"{path}: holds a Lambda layer (arbitrary code); edgeclf refuses it; use standard layers")


def load_keras(path: Path, compile: bool = False) -> Any:
    """keras.models.load_model with safe_mode=True, after `check_keras_file`."""
    import keras

    check_keras_file(path)
    try:
        return keras.models.load_model(path, compile=compile, safe_mode=True)
    except (ValueError, TypeError, OSError) as e:
        raise ModelError(f"{path}: Keras cannot load it safely ({str(e).splitlines()[0][:160]})") from None


def inference_view(model: Any) -> Any:
    """A model sharing `model`'s layers but not its optimizer or compile state: what gets saved as the result."""
    import keras

    return keras.Model(model.inputs, model.outputs, name=model.name)
