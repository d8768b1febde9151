"""The known-good bundle on disk, beside the one `edgeclf camera` runs: `<bundle>.previous/`.

A rollback in memory is not enough: after a restart the service would load the bundle that was refused.
So the reload (edge/reload.py) keeps the disk in step with what runs:

* before a new bundle is swapped in, `<bundle>.previous/` must hold the running one: `deploy/push-bundle.sh`
  renamed it there already (then it is only verified), otherwise it is written from memory (the model bytes
  the interpreter holds, its manifest and sample frames) into a temp folder renamed over `.previous`;
* when a new bundle fails its checks or is rolled back, the refused folder is renamed to
  `<bundle>.rejected/` and `<bundle>.previous/` back to `<bundle>`;
* at start (`start`), a `<bundle>` missing beside a `<bundle>.previous/` (a kill between those two
  renames, or between the two of a push) is put back, and a `<bundle>` that cannot load falls back to
  `<bundle>.previous/` when that one loads.

Only renames within one folder and temp folders renamed into place: at every instant each name holds a
complete bundle or nothing, and a folder left missing by a kill is put back by the next start.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable, Iterator

from edgeclf.bundle import MANIFEST_FILE, MODEL_FILE, Manifest, load_bundle, read_manifest, write_bundle
from edgeclf.edge.model import Classifier
from edgeclf.errors import BundleError, EdgeclfError
from edgeclf.samples import sample_bytes

log = logging.getLogger(__name__)

PREVIOUS = ".previous"
REJECTED = ".rejected"
SampleFiles = dict[str, bytes]


def bundle_dir(path: str | os.PathLike[str]) -> Path:
    """The bundle folder of a path given as the folder, its manifest.json or its model.tflite (which may be gone)."""
    p = Path(path)
    return p.parent if p.name in (MANIFEST_FILE, MODEL_FILE) and not p.is_dir() else p


def previous_of(path: Path) -> Path:
    return path.with_name(path.name + PREVIOUS)


def rejected_of(path: Path) -> Path:
    return path.with_name(path.name + REJECTED)


def sample_files(clf: Classifier) -> SampleFiles | None:
    """The bundle's sample frames (checked against the manifest), kept so the bundle can be written back from
    memory once its folder is gone; None when they cannot be read now."""
    samples = clf.manifest.samples
    try:
        return {s.file: sample_bytes(clf.bundle.path, s) for s in (samples.items if samples else ())}
    except (BundleError, OSError):
        return None


def disk_manifest(path: Path) -> Manifest | None:
    """The manifest at `path` (the model is not read), or None when there is none. Bundles are compared by
    their whole manifest: two bundles of one model (same sha256) may differ in calibration or samples."""
    try:
        return read_manifest(path)
    except (EdgeclfError, OSError):
        return None


def _holds(path: Path, manifest: Manifest) -> bool:
    """Whether `path` is a complete, intact copy of the bundle with `manifest` (model and samples read)."""
    try:
        b = load_bundle(path)
        if b.manifest != manifest:
            return False
        for s in b.manifest.samples.items if b.manifest.samples else ():
            sample_bytes(path, s)
        return True
    except (EdgeclfError, OSError):
        return False


def keep_previous(path: Path, clf: Classifier, files: SampleFiles | None) -> str:
    """Make `<path>.previous/` hold `clf`'s bundle, the one about to be replaced. Returns how."""
    with swap_lock(path):
        return _keep(path, clf, files)


def _keep(path: Path, clf: Classifier, files: SampleFiles | None) -> str:
    prev, sha = previous_of(path), clf.manifest.sha256
    if _holds(prev, clf.manifest):
        return "there already"
    if files is None:
        raise BundleError(f"{prev}: cannot write the running bundle {sha[:12]} there: its sample frames could "
                          "not be read when it was loaded; push it back by hand to keep a way back")
    write_bundle(prev, clf.bundle.model_bytes, clf.manifest, files)  # temp folder renamed over `prev`
    _sync_dir(path.parent)
    return "written from memory"


def put_back(path: Path, clf: Classifier, files: SampleFiles | None, refused: Callable[[], bool] = lambda: True,
             then: Callable[[], None] = lambda: None) -> str | None:
    """Make `path` hold `clf`'s bundle again after a refused update: the refused folder goes to
    `<path>.rejected/` (an older one there is deleted), `<path>.previous/` is renamed to `path`. Returns how,
    or None when nothing was to be done: `path` holds `clf`'s bundle, or `refused()` says that what is there
    now is not the refused bundle (another one was pushed since: it is tried next, not thrown away).
    `then` runs after the swap, still under the lock (the reload notes the folder as its own)."""
    with swap_lock(path):
        if disk_manifest(path) == clf.manifest or not refused():
            return None
        how = _keep(path, clf, files)
        _swap_in_previous(path)
        then()
    return f"from {path.name}{PREVIOUS} ({how})"


@contextlib.contextmanager
def swap_lock(path: Path) -> Iterator[None]:
    """Hold `.<name>.lock` beside the bundle: deploy/push-bundle.sh takes it (flock) for its swap, so a push
    and a put-back never interleave their renames."""
    import fcntl

    fd = os.open(path.parent / f".{path.name}.lock", os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _swap_in_previous(path: Path) -> None:
    rejected = rejected_of(path)
    if rejected.exists() or rejected.is_symlink():
        trash = Path(tempfile.mkdtemp(prefix=f".{rejected.name}.", suffix=".trash", dir=path.parent))
        os.replace(rejected, trash / "old")  # gone from its name in one step, then deleted at leisure
        shutil.rmtree(trash, ignore_errors=True)
    if path.exists() or path.is_symlink():
        os.replace(path, rejected)
    os.replace(previous_of(path), path)  # a kill just before this: `start` finishes it
    _sync_dir(path.parent)


def start(path: str | os.PathLike[str], load: Callable[[Path], Classifier]) -> tuple[Classifier, str | None]:
    """Load the bundle at start, after the repairs above; returns the classifier and what was repaired."""
    d = bundle_dir(path)
    prev = previous_of(d)
    note = None
    if _left_over(d) or not (d.exists() or d.is_symlink()) and prev.is_dir():  # else no lock file is made
        with swap_lock(d):
            _clean(d)
            if not (d.exists() or d.is_symlink()) and prev.is_dir():
                os.replace(prev, d)
                _sync_dir(d.parent)
                note = f"{d} was missing (a swap cut short); {prev.name} put back in its place"
                log.warning("%s", note)
    try:
        return load(Path(path) if note is None else d), note
    except EdgeclfError as e:
        if not prev.is_dir():
            raise
        error = e
    try:
        load(prev)  # refused in its own place first: then the swap below cannot make things worse
    except EdgeclfError:
        raise error from None
    try:
        with swap_lock(d):
            _swap_in_previous(d)
    except OSError as e:
        raise BundleError(f"{error}; {prev.name} would load but cannot be put in its place ({e.strerror}); "
                          f"make {d.parent} writable for the camera's user") from None
    why = f"{d} cannot be used ({' '.join(str(error).split())[:200]}); moved to {rejected_of(d).name}, " \
          f"{prev.name} put back in its place"
    log.error("%s", why)
    return load(d), why


def _left_over(path: Path) -> list[Path]:
    """The temp folders a kill left beside the bundle (never `.incoming`: a push may be under way)."""
    p = path.name
    try:
        return [left for pattern in (f".{p}{PREVIOUS}.*.tmp", f".{p}{PREVIOUS}.*.old", f".{p}{REJECTED}.*.trash")
                for left in path.parent.glob(pattern)]
    except OSError:
        return []


def _clean(path: Path) -> None:
    for left in _left_over(path):
        log.info("removing %s, left by an interrupted swap", left)
        shutil.rmtree(left, ignore_errors=True)


def _sync_dir(folder: Path) -> None:
    """Make the renames in `folder` survive a power cut (the SD card of a Pi)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
