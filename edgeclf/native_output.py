"""Keep what native libraries print straight to file descriptors 1 and 2 off the user's terminal, for one
block of code: one mechanism with a list of descriptors.

TensorFlow's converter and the TFLite interpreters print from C++ ("fully_quantize: 0, inference_type: 6 ...",
"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.", absl W0000 lines): nothing a user can act on, and
the README promises that a command shows only edgeclf's own lines. While held, the descriptors point at a temp
file; afterwards they are put back and the text is logged at DEBUG (`-vv`) and kept in `NativeOutput.text`, so
an error can quote it and nothing is lost.

- `hold_native_stderr()`: fd 2 only (the edge: around interpreter creation; Python's own `sys.stderr` writes
  in the block are caught too, same descriptor). Standard library only: the Pi runs it.
- `quiet_native()`: fds 1 and 2, plus Python warnings and the absl/tensorflow/keras loggers (the converter).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
import warnings
from typing import Iterator, Sequence

log = logging.getLogger(__name__)

_PYTHON_LOGGERS = ("absl", "tensorflow", "keras")


class NativeOutput:
    """What native code printed while held (filled in when the block ends).

    Not `edgeclf.edge.capture.Captured` (a camera frame).
    """

    text: str = ""

    def tail(self, lines: int = 5) -> str:
        kept = [ln for ln in self.text.splitlines() if ln.strip()]
        return " | ".join(kept[-lines:])


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()


@contextlib.contextmanager
def hold_native(fds: Sequence[int] = (2,), enabled: bool = True, python_too: bool = False) -> Iterator[NativeOutput]:
    """Point `fds` at a temp file for the block (and, with `python_too`, silence Python warnings and the
    absl/tensorflow/keras loggers below ERROR); restore them and log what was caught at DEBUG."""
    out = NativeOutput()
    if not enabled:
        yield out
        return
    _flush()
    saved: list[tuple[int, int]] = []
    try:
        for fd in fds:
            saved.append((fd, os.dup(fd)))
    except OSError:  # no real descriptors (embedded interpreter): nothing to hold
        for _, dup in saved:
            os.close(dup)
        yield out
        return
    loggers = [logging.getLogger(name) for name in _PYTHON_LOGGERS] if python_too else []
    levels = [lg.level for lg in loggers]
    with tempfile.TemporaryFile(mode="w+b") as sink, warnings.catch_warnings():
        if python_too:
            warnings.simplefilter("ignore")
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        for fd, _ in saved:
            os.dup2(sink.fileno(), fd)
        try:
            yield out
        finally:
            _flush()
            for fd, dup in saved:
                os.dup2(dup, fd)
                os.close(dup)
            for lg, level in zip(loggers, levels):
                lg.setLevel(level)
            sink.seek(0)
            out.text = sink.read().decode("utf-8", "replace")
            if out.text.strip():
                log.debug("native output:\n%s", out.text.rstrip())


def hold_native_stderr(enabled: bool = True) -> contextlib.AbstractContextManager[NativeOutput]:
    """fd 2 only: the interpreter's banner while it is created (`edgeclf.edge.model`)."""
    return hold_native((2,), enabled)


def quiet_native(enabled: bool = True) -> contextlib.AbstractContextManager[NativeOutput]:
    """fds 1 and 2, Python warnings and TensorFlow's loggers: the converter's noise (`edgeclf.convert`)."""
    return hold_native((1, 2), enabled, python_too=True)
