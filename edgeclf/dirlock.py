"""One writer per folder: an exclusive lock that the kernel releases even when the holder is SIGKILLed.

`train` (and `--resume`) hold their run directory for the whole run, `convert` its bundles folder; a second
copy started on the same folder stops at once with one line instead of mixing its files with the first's.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Iterator

from .errors import RunError

LOCK_FILE = ".edgeclf.lock"


@contextlib.contextmanager
def exclusive(folder: Path, doing: str) -> Iterator[None]:
    """Hold `folder`/.edgeclf.lock; `doing` names the holder in the error ("`edgeclf train` is writing this run")."""
    try:
        import fcntl
    except ImportError:  # Windows: no flock
        yield
        return
    fh = open(Path(folder) / LOCK_FILE, "a+")
    try:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise RunError(f"{folder}: another {doing}; wait for it to finish (or stop it) and try again") from None
        yield
    finally:
        fh.close()
