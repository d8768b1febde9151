"""The output folder: checked before any work, locked while written, left clean after a crash.

Bundles are swapped in by `edgeclf.atomic.atomic_dir` (temp folder `.<name>.*.tmp`, old one moved to
`.<name>.*.old` for an instant). A process killed mid-write leaves those behind; the next run, holding
the folder's lock so that no other conversion can be writing, removes the temp ones and puts back an
old bundle whose replacement never arrived.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

from edgeclf.errors import EdgeclfError, UsageError

log = logging.getLogger(__name__)

# mkstemp/mkdtemp names: ".<target>.<8 random chars>.tmp" (+ the target's suffix for files) or ".old"
_LEFTOVER = re.compile(r"^\.(?P<name>.+)\.[a-z0-9_]{8}\.(?P<kind>tmp|old)(\.[^.]*)?$")


def check_writable(out: Path, what: str, need_bytes: int = 0) -> None:
    """Raise a one-line error unless `out` is (or can be made) a writable folder with `need_bytes` free."""
    try:
        out.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise UsageError(f"{what} {out}: is a file, not a folder; pass a folder with --out") from None
    except OSError as e:
        raise UsageError(f"{what} {out}: cannot be created ({e.strerror}); pass a writable folder with --out") from None
    if not out.is_dir():
        raise UsageError(f"{what} {out}: is not a folder; pass a folder with --out")
    try:
        fd, probe = tempfile.mkstemp(prefix=".write-test.", dir=out)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise UsageError(f"{what} {out}: cannot be written ({e.strerror}); pass a writable folder with --out") from None
    free = shutil.disk_usage(out).free
    if need_bytes and free < need_bytes:
        raise UsageError(f"{what} {out}: {free / 2**20:.1f} MB free, the bundles need about "
                         f"{need_bytes / 2**20:.1f} MB; free some space or pass another folder with --out")


@contextlib.contextmanager
def locked(out: Path) -> Iterator[None]:
    """Hold an exclusive lock on `out` (released by the kernel even on SIGKILL), then tidy leftovers."""
    from edgeclf.dirlock import exclusive

    with exclusive(out, "`edgeclf convert` is writing bundles here"):
        tidy_leftovers(out)
        yield


def tidy_leftovers(out: Path) -> list[str]:
    """Remove temp folders of interrupted writes; restore an old bundle whose swap was cut short."""
    done = []
    for p in sorted(out.iterdir()):
        m = _LEFTOVER.match(p.name)
        if not m:
            continue
        target = out / m["name"]
        if p.is_file():
            p.unlink()
            done.append(f"removed {p.name}")
        elif m["kind"] == "old" and not target.exists():
            os.replace(p, target)
            done.append(f"restored {target.name}")
        else:
            shutil.rmtree(p, ignore_errors=True)
            done.append(f"removed {p.name}")
    for line in done:
        log.info("tidied an interrupted write: %s", line)
    return done
