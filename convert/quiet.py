"""Keep TensorFlow's converter noise (absl and C++ logs, Python warnings) out of the user's terminal.

The converter and the interpreters print from C++ straight to file descriptors 1 and 2 ("fully_quantize:
0, inference_type: 6 ...", "Created TensorFlow Lite XNNPACK delegate", absl W0000 lines): nothing a
user can act on. While quiet, both descriptors go to a temp file; the text is logged at DEBUG (`-vv`)
afterwards and attached to errors, so nothing is lost when something fails.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
import warnings
from typing import Iterator

log = logging.getLogger(__name__)


class NativeOutput:
    """What the native code printed while quiet (filled in when the block ends).

    Not `edgeclf.edge.capture.Captured` (a camera frame).
    """

    text: str = ""

    def tail(self, lines: int = 5) -> str:
        kept = [ln for ln in self.text.splitlines() if ln.strip()]
        return " | ".join(kept[-lines:])


@contextlib.contextmanager
def quiet_native(enabled: bool = True) -> Iterator[NativeOutput]:
    """Redirect fds 1 and 2 (and Python warnings) to a temp file for the duration, when `enabled`."""
    captured = NativeOutput()
    if not enabled:
        yield captured
        return
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    saved = []
    try:
        saved = [(fd, os.dup(fd)) for fd in (1, 2)]
    except OSError:  # no real descriptors (embedded interpreter): nothing to redirect
        for _, dup in saved:
            os.close(dup)
        yield captured
        return
    loggers = [logging.getLogger(name) for name in ("absl", "tensorflow", "keras")]
    levels = [lg.level for lg in loggers]
    with tempfile.TemporaryFile(mode="w+b") as sink, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        for fd, _ in saved:
            os.dup2(sink.fileno(), fd)
        try:
            yield captured
        finally:
            for stream in (sys.stdout, sys.stderr):
                with contextlib.suppress(Exception):
                    stream.flush()
            for fd, dup in saved:
                os.dup2(dup, fd)
                os.close(dup)
            for lg, level in zip(loggers, levels):
                lg.setLevel(level)
            sink.seek(0)
            captured.text = sink.read().decode("utf-8", "replace")
            if captured.text.strip():
                log.debug("converter output:\n%s", captured.text.rstrip())
