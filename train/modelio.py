"""The one safe way edgeclf loads a Keras model (train's resume and warm start, convert, bench).

`.keras` archives only, checked before Keras deserializes anything: legacy HDF5 (by name or by its
signature, so an .h5 renamed .keras is caught) and Lambda layers (arbitrary Python) are refused, then
Keras loads it with safe_mode=True. `edgeclf.convert.export.load_keras` is this, with the converter's
native log kept quiet.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

from edgeclf.errors import ModelError

HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
UNSAFE_LAYERS = ("Lambda",)
_MAX_CONFIG_BYTES = 64 * 1024 * 1024  # a model's config.json is kilobytes; more is not a model edgeclf wrote


_MAX_CONFIG_DEPTH = 200  # a Keras model's config nests a few dozen levels; a hostile file nests thousands


def _find_unsafe(config: Any) -> str | None:
    """'Lambda layer <name>' for the first Lambda layer in a Keras config tree, or None. Walked with a stack, not
    recursion: a hostile nesting is a ValueError, never a RecursionError."""
    todo = [(config, 0)]
    while todo:
        node, depth = todo.pop()
        if depth > _MAX_CONFIG_DEPTH:
            raise ValueError(f"config.json nested over {_MAX_CONFIG_DEPTH} levels deep")
        if isinstance(node, dict):
            if node.get("class_name") in UNSAFE_LAYERS:
                inner = node.get("config")
                name = inner.get("name") if isinstance(inner, dict) else None
                return f"{node['class_name']} layer {name!r}" if name else f"{node['class_name']} layer"
            children: Any = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        todo.extend((v, depth + 1) for v in reversed(list(children)))
    return None


def check_keras_file(path: Path) -> None:
    """Refuse what `safe_mode` must never see: a missing file, HDF5, a non-archive, a Lambda layer."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        raise ModelError(f"{path}: no such model file; expected the models/<size>.keras that `edgeclf train` "
                         "writes; check the path or train again") from None
    if path.suffix.lower() in (".h5", ".hdf5") or head == HDF5_MAGIC:
        raise ModelError(f"{path}: is a legacy HDF5 model, and HDF5 (.h5) models are refused (they can carry code "
                         "that safe_mode cannot stop); re-save it as .keras (model.save('model.keras')) where you "
                         "trust it")
    if path.suffix.lower() != ".keras":
        raise ModelError(f"{path}: expected a Keras v3 .keras archive (what `edgeclf train` writes), "
                         f"got a {path.suffix or 'suffix-less'} file")
    try:
        with zipfile.ZipFile(path) as z:
            if z.getinfo("config.json").file_size > _MAX_CONFIG_BYTES:
                raise ValueError(f"config.json over {_MAX_CONFIG_BYTES // 2**20} MB")
            config = json.loads(z.read("config.json"))
        unsafe = _find_unsafe(config)
    except RecursionError:
        raise ModelError(f"{path}: not a valid .keras file (config.json nested too deeply to read); it is damaged "
                         "or not a Keras model; re-copy it or train again") from None
    except (zipfile.BadZipFile, KeyError, ValueError, UnicodeDecodeError) as e:
        raise ModelError(f"{path}: not a valid .keras file ({e}); it is damaged or not a Keras model; "
                         "re-copy it or train again") from None
    if unsafe:
        raise ModelError(f"{path}: holds a {unsafe}; Lambda layers run arbitrary Python and are refused "
                         "(safe_mode stays on); rebuild the model with standard Keras layers")


def load_keras(path: Path, compile: bool = False) -> Any:
    """keras.saving.load_model with safe_mode=True, after `check_keras_file`."""
    check_keras_file(path)
    import keras

    try:
        return keras.saving.load_model(path, compile=compile, safe_mode=True)
    except Exception as e:  # Keras raises ValueError/TypeError/OSError with long multi-line texts
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        raise ModelError(f"{path}: Keras could not load it safely ({first}); train again with this edgeclf") from None


def inference_view(model: Any) -> Any:
    """A model sharing `model`'s layers but not its optimizer or compile state: what gets saved as the result."""
    import keras

    return keras.Model(model.inputs, model.outputs, name=model.name)
