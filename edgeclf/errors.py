"""Typed errors. The library raises these; only the CLI prints them (one line) and exits."""

from __future__ import annotations

import errno
import os


class EdgeclfError(Exception):
    """Base of every error a user can act on. The message names the thing, what was expected and the fix."""

    exit_code = 1


class UsageError(EdgeclfError):
    """A flag or argument that cannot work as given."""

    exit_code = 2


class DataError(EdgeclfError):
    """A data folder or image that cannot be used."""


class BundleError(EdgeclfError):
    """A bundle (model + manifest) that is missing, tampered with or inconsistent."""


class ModelError(EdgeclfError):
    """A model file that is not what it claims to be, or cannot be loaded safely."""


class RunError(EdgeclfError):
    """A training run directory that is incomplete or inconsistent."""


class SourceError(EdgeclfError):
    """A frame source (camera, video, folder, URL) that cannot be opened."""


class DiskFullError(EdgeclfError):
    """A write that failed for want of space: a full disk, a quota, a file size limit."""


# ENOSPC: no space left on device; EDQUOT: disk quota exceeded; EFBIG: file too large (RLIMIT_FSIZE, FAT32's 4 GB)
NO_SPACE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
NO_SPACE_TEXTS = ("No space left on device", "Disk quota exceeded", "File too large")


def disk_full(e: BaseException, where: object = None) -> DiskFullError | None:
    """The one-line error for `e` when it says the disk (or a limit) is full, else None. `where` names the place
    written to when the error does not (TensorFlow's own errors carry only the text)."""
    if isinstance(e, OSError) and e.errno in NO_SPACE_ERRNOS:
        why, place = e.strerror, e.filename or where
        if isinstance(place, str):  # name the folder written to, not the temp file inside it that never landed
            parts = place.split(os.sep)
            temp = next((i for i, part in enumerate(parts) if part.startswith(".") and ".tmp" in part), None)
            place = os.sep.join(parts[:temp]) or place if temp is not None else place
    else:
        why = next((t for t in NO_SPACE_TEXTS if t in str(e)), None)
        place = where
        if why is None:
            return None
    at = f"{place}: " if place else ""
    return DiskFullError(f"{at}{why} while writing; free some space there (or write somewhere else) and run the "
                         "command again; what was written before is unchanged")


class NotBuiltError(EdgeclfError):
    """A command whose implementation has not landed yet."""
