"""Without -v, a command's stderr carries only edgeclf's own lines: native banners are filtered out.

TensorFlow, absl, oneDNN and TFLite print from C++ straight to file descriptor 2, at import and during
work ("WARNING: All log messages before absl::InitializeLog() ...", "I0000 ... oneDNN custom operations
are on", "E0000 ... use_unbounded_threadpool", "INFO: Created TensorFlow Lite XNNPACK delegate"). Nothing
there is for a user to act on. The real CLI (not the in-process test runner) points fd 2 at a pipe whose
reader thread passes every other line through unchanged, in order; `-v` turns the filter off. Python's
own stderr (logging, errors, tracebacks) goes through the same pipe and passes.
"""

from __future__ import annotations

import atexit
import os
import re
import sys
import threading

NATIVE_NOISE = re.compile(
    rb"^(WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    rb"|[IWE]\d{4} [\d:.]+ +\d+ [\w./-]+:\d+\]"  # absl/glog: I0000 00:00:1796097788.17 6241 port.cc:153]
    rb"|INFO: Created TensorFlow Lite XNNPACK delegate for CPU\."
    rb"|To enable the following instructions: .* rebuild TensorFlow with the appropriate compiler flags\."
    rb"|This TensorFlow binary is optimized to use available CPU instructions)")


def is_noise(line: bytes) -> bool:
    return NATIVE_NOISE.match(line.lstrip()) is not None


def filter_native_stderr() -> None:
    """Install the filter for the rest of the process (idempotent); restored and drained at exit."""
    if getattr(filter_native_stderr, "_on", False):
        return
    try:
        saved = os.dup(2)
        r, w = os.pipe()
    except OSError:  # no real fd 2: nothing to filter
        return
    sys.stderr.flush()
    os.dup2(w, 2)
    os.close(w)

    def pump() -> None:
        with os.fdopen(r, "rb", buffering=0) as src:
            pending = b""
            while True:
                chunk = src.read(65536)
                if not chunk:
                    break
                pending += chunk
                *lines, pending = pending.split(b"\n")
                out = b"".join(line + b"\n" for line in lines if not is_noise(line))
                if out:
                    os.write(saved, out)
            if pending and not is_noise(pending):
                os.write(saved, pending)

    thread = threading.Thread(target=pump, name="edgeclf-stderr-filter", daemon=True)
    thread.start()

    def restore() -> None:
        try:
            sys.stderr.flush()
        except Exception:  # noqa: BLE001 - at exit, a closed stream is no reason to lose the rest
            pass
        os.dup2(saved, 2)  # closes the pipe's last writer in this process: the reader drains and stops
        thread.join(timeout=2.0)

    atexit.register(restore)
    filter_native_stderr._on = True  # type: ignore[attr-defined]


def wants_verbose(argv: list[str]) -> bool:
    """-v / --verbose / -vv among the global options (before the command name)."""
    for a in argv:
        if not a.startswith("-"):
            return False
        if a in ("--verbose",) or re.fullmatch(r"-[qv]*v[qv]*", a):
            return True
    return False
