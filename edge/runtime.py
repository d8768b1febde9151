"""Find a TFLite interpreter: ai_edge_litert -> tflite_runtime -> tensorflow.lite (last resort, warned).

Also the safe first load: `probe_model` builds and invokes a model in a child process, so that a model
the native loader chokes on (tflite-runtime 2.14 segfaults on some damaged files) takes down the child,
not the caller. A model that passed once (same sha256, same runtime and version) is remembered in a
small cache folder and not probed again.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
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
        if name == "tensorflow" and not prefer:
            log.warning("using tensorflow.lite: no ai-edge-litert or tflite-runtime here; on a Pi install "
                        "`edgeclf[edge]` (64-bit) or `edgeclf[tflite-runtime]` (32-bit)")
        return rt
    raise UsageError("no TFLite interpreter could be imported (" + "; ".join(errors) + "); install "
                     "`pip install 'edgeclf[edge]'` (ai-edge-litert, 64-bit) or `'edgeclf[tflite-runtime]'` (32-bit Pi OS)")


def manifest_key(rt: Runtime) -> str:
    """The name a manifest's `runtimes` verdicts use for this runtime (see `edgeclf.bundle.RUNTIMES`)."""
    if rt.name == "tflite-runtime":
        return "tflite-runtime-" + ".".join(rt.version.split(".")[:2])
    return rt.name


def default_threads() -> int:
    """The threads an interpreter gets: all the cores this process may use."""
    from edgeclf.cores import usable_cores

    return usable_cores()


def max_threads() -> int:
    """The most interpreter threads edgeclf accepts: 4 per core (more only slows inference down, and tens of
    thousands crash the native thread pool)."""
    return 4 * max(1, os.cpu_count() or 1)


def check_threads(threads: int | None, flag: str = "--threads") -> None:
    """Refuse a thread count outside 1..max_threads() before anything is loaded (None: the default)."""
    if threads is None:
        return
    from edgeclf.errors import UsageError

    cap = max_threads()
    if isinstance(threads, bool) or not isinstance(threads, int) or not 1 <= threads <= cap:
        raise UsageError(f"{flag} {threads}: expected 1 to {cap} (4 per core on this machine's "
                         f"{os.cpu_count() or 1}); leave it out to use every core")


def cache_dir() -> Path:
    """$EDGECLF_CACHE, else $XDG_CACHE_HOME/edgeclf, else ~/.cache/edgeclf."""
    env = os.environ.get("EDGECLF_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "edgeclf"


PROBE_TIMEOUT_S = 120.0


def probe_model(data: bytes, sha256: str, rt: Runtime, name: str) -> bool:
    """Build, allocate and invoke the model once in a child process; raise ModelError if that fails or crashes.

    Returns True when a child was run, False when the cache says this model already passed here.
    """
    import json
    import subprocess

    from edgeclf.errors import ModelError

    marker = cache_dir() / "probed" / f"{sha256}-{rt.name}-{rt.version}.ok"
    if sha256 and marker.is_file():
        return False
    from edgeclf.child import module_argv

    cmd = module_argv("edgeclf.edge.probe", rt.name)
    env = {**os.environ, "EDGECLF_RUNTIME": rt.name, "TF_CPP_MIN_LOG_LEVEL": "3"}
    try:
        proc = subprocess.run(cmd, input=data, capture_output=True, timeout=PROBE_TIMEOUT_S, env=env)
    except subprocess.TimeoutExpired:
        raise ModelError(f"{name}: loading it with {rt.name} did not finish in {PROBE_TIMEOUT_S:.0f} s; the model "
                         "is damaged or too large for this device; re-copy the bundle or re-convert") from None
    if proc.returncode < 0:
        import signal

        sig = signal.Signals(-proc.returncode).name
        raise ModelError(f"{name}: not a valid TFLite model: {rt.name} {rt.version} crashed loading it ({sig}); "
                         "re-copy the bundle or re-convert")
    result = {}
    lines = proc.stdout.decode("utf-8", "replace").strip().splitlines()
    try:
        result = json.loads(lines[-1]) if lines else {}
    except json.JSONDecodeError:
        pass
    if proc.returncode != 0 or not result.get("ok"):
        why = result.get("error") or _last_line(proc.stderr) or f"exit code {proc.returncode}"
        raise ModelError(f"{name}: {rt.name} {rt.version} cannot load it ({why}); re-copy the bundle, or re-convert "
                         "for this runtime")
    if sha256:
        try:
            from edgeclf.atomic import write_text

            write_text(marker, json.dumps(result) + "\n")
        except OSError as e:
            log.debug("cannot remember the probe in %s: %s", marker, e)
    return True


def _last_line(raw: bytes) -> str:
    lines = [ln.strip() for ln in raw.decode("utf-8", "replace").splitlines() if ln.strip()]
    return lines[-1][:300] if lines else ""
