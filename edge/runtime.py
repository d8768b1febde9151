"""Find a TFLite interpreter: ai_edge_litert -> tflite_runtime -> tensorflow.lite (last resort, warned)."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any, Callable

log = logging.getLogger(__name__)

RUNTIME_MODULES = (
    ("ai-edge-litert", "ai_edge_litert.interpreter"),
    ("tflite-runtime", "tflite_runtime.interpreter"),
    ("tensorflow", "tensorflow.lite"),
)


@dataclass(frozen=True)
class Runtime:
    name: str
    version: str
    interpreter_class: Callable[..., Any]


def _import(name: str, module: str) -> Runtime:
    import importlib

    if name == "tensorflow":
        tf = importlib.import_module("tensorflow")
        return Runtime(name, tf.__version__, tf.lite.Interpreter)
    mod = importlib.import_module(module)
    top = importlib.import_module(module.split(".")[0])
    version = getattr(top, "__version__", "") or _dist_version(name)
    return Runtime(name, version, mod.Interpreter)


def _dist_version(dist: str) -> str:
    try:
        from importlib.metadata import version

        return version(dist)
    except Exception:
        return "unknown"


def available_runtimes(include_tensorflow: bool = False) -> list[str]:
    """Names of the interpreters importable here, in preference order (without importing TensorFlow)."""
    import importlib.util

    names = []
    for name, module in RUNTIME_MODULES:
        if name == "tensorflow" and not include_tensorflow:
            continue
        if importlib.util.find_spec(module.split(".")[0]) is not None:
            names.append(name)
    return names


def find_runtime(prefer: str | None = None) -> Runtime:
    """The first interpreter that imports, or the one named by `prefer` (or $EDGECLF_RUNTIME)."""
    from edgeclf.errors import UsageError

    prefer = prefer or os.environ.get("EDGECLF_RUNTIME") or None
    names = [n for n, _ in RUNTIME_MODULES]
    if prefer and prefer not in names:
        raise UsageError(f"runtime {prefer!r} is unknown; expected one of {', '.join(names)}")
    errors = []
    for name, module in RUNTIME_MODULES:
        if prefer and name != prefer:
            continue
        try:
            rt = _import(name, module)
        except ImportError as e:
            errors.append(f"{name}: {e}")
            continue
        if name == "tensorflow":
            log.warning("using tensorflow.lite: no ai-edge-litert or tflite-runtime here; on a Pi install "
                        "`edgeclf[edge]` (64-bit) or `edgeclf[tflite-runtime]` (32-bit)")
        return rt
    raise UsageError("no TFLite interpreter could be imported (" + "; ".join(errors) + "); install "
                     "`pip install 'edgeclf[edge]'` (ai-edge-litert, 64-bit) or `'edgeclf[tflite-runtime]'` (32-bit Pi OS)")
