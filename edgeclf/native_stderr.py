"""Keep what native libraries print on file descriptor 2 off the user's terminal, for one block of code.

TFLite prints "INFO: Created TensorFlow Lite XNNPACK delegate for CPU." from C++ straight to fd 2 when an
interpreter allocates its tensors: nothing a user can act on, and the README promises that a command shows
only edgeclf's own lines. `hold_native_stderr()` points fd 2 at a temp file for the block, then puts it back
and logs what was caught at DEBUG (`-vv`); when the block fails, the caught text is in `Held.text` for the
error message. Python's own `sys.stderr` writes in the block are caught as well (same descriptor).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
from typing import Iterator

log = logging.getLogger(__name__)


class Held:
    """What was printed on fd 2 while held (filled in when the block ends)."""

    text: str = ""


@contextlib.contextmanager
def hold_native_stderr(enabled: bool = True) -> Iterator[Held]:
    held = Held()
    if not enabled:
        yield held
        return
    with contextlib.suppress(Exception):
        sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no real descriptor 2 (embedded interpreter): nothing to hold
        yield held
        return
    with tempfile.TemporaryFile(mode="w+b") as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield held
        finally:
            with contextlib.suppress(Exception):
                sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            held.text = sink.read().decode("utf-8", "replace")
            if held.text.strip():
                log.debug("native output:\n%s", held.text.rstrip())
