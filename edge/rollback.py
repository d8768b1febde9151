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
  `<bundle>.previous/` when that one loads;
* while a new bundle is on trial, `<bundle>.trial.json` says so (`Trial`: which bundle, which one before it,
  the old one's rate the trial is judged against); it is removed when the trial ends. A start that finds it
  counts the start in it and goes on with the trial, or, when the process died `TRIAL_DEATHS` times during
  that trial (a crash, an OOM kill), rolls the bundle back before loading it.

Only renames within one folder and temp folders renamed into place: at every instant each name holds a
complete bundle or nothing, and a folder left missing by a kill is put back by the next start.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass, fields, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator

from edgeclf import atomic
from edgeclf.bundle import (MANIFEST_FILE, MODEL_FILE, Manifest, load_bundle, read_manifest, read_regular_file,
                            sha256_bytes, write_bundle)
from edgeclf.edge.model import Classifier
from edgeclf.errors import BundleError, EdgeclfError
from edgeclf.samples import sample_bytes

log = logging.getLogger(__name__)

PREVIOUS = ".previous"
REJECTED = ".rejected"
TRIAL = ".trial.json"
TRIAL_DEATHS = 2  # process deaths during one trial after which the start rolls the new bundle back
SampleFiles = dict[str, bytes]


def bundle_dir(path: str | os.PathLike[str]) -> Path:
    """The bundle folder of a path given as the folder, its manifest.json or its model.tflite (which may be gone)."""
    p = Path(path)
    return p.parent if p.name in (MANIFEST_FILE, MODEL_FILE) and not p.is_dir() else p


def previous_of(path: Path) -> Path:
    return path.with_name(path.name + PREVIOUS)


def rejected_of(path: Path) -> Path:
    return path.with_name(path.name + REJECTED)


def trial_of(path: Path) -> Path:
    return path.with_name(path.name + TRIAL)


def manifest_digest(manifest: Manifest) -> str:
    """A bundle's identity: its whole manifest (one model may come with two calibrations)."""
    return sha256_bytes(json.dumps(manifest.to_dict(), sort_keys=True).encode())


@dataclass(frozen=True)
class Trial:
    """`<bundle>.trial.json`: the bundle at `<bundle>` is on trial against the one at `<bundle>.previous/`."""

    sha256: str  # the new bundle's model
    manifest: str  # and its manifest_digest
    previous_sha256: str
    previous_manifest: str
    baseline_rate: float  # the old bundle's not-a-class/error rate the trial is judged against
    baseline_frames: int  # over that many frames
    trial_frames: int
    starts: int = 1  # processes that ran this trial
    clean_stops: int = 0  # of those, how many stopped cleanly (SIGTERM, end of the source): not deaths
    time: str = ""  # when the trial began (UTC)

    @property
    def deaths(self) -> int:
        return self.starts - 1 - self.clean_stops

    @classmethod
    def begin(cls, new: Manifest, old: Manifest, rate: float, frames: int, trial_frames: int) -> Trial:
        return cls(new.sha256, manifest_digest(new), old.sha256, manifest_digest(old), round(rate, 6), frames,
                   trial_frames, time=datetime.now(timezone.utc).isoformat(timespec="seconds"))

    @classmethod
    def from_dict(cls, d: Any) -> Trial:
        if not isinstance(d, dict):
            raise ValueError(f"expected a JSON object, got {type(d).__name__}")
        kinds = {"baseline_rate": float, "time": str, **{k: str for k in ("sha256", "manifest", "previous_sha256",
                                                                            "previous_manifest")}}
        for f in fields(cls):
            want = kinds.get(f.name, int)
            v = d.get(f.name)
            if isinstance(v, bool) or not isinstance(v, (int, float) if want is float else want):
                raise ValueError(f"{f.name}: expected {want.__name__}, got {v!r}"[:120])
        t = cls(**{f.name: d[f.name] for f in fields(cls)})
        if not (0 <= t.baseline_rate <= 1 and t.baseline_frames >= 0 and t.trial_frames >= 1 and t.starts >= 1
                and 0 <= t.clean_stops < t.starts):
            raise ValueError("a count or rate out of range")
        return t


def write_trial(path: Path, trial: Trial) -> None:
    """`<path>.trial.json`, atomically (temp file, fsync, rename). Only at a trial's start, restart and end."""
    atomic.write_json(trial_of(path), asdict(trial))
    _sync_dir(path.parent)


def end_trial(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        trial_of(path).unlink()
        _sync_dir(path.parent)


def read_trial(path: Path) -> Trial | None:
    """The trial marker beside `path`; None when there is none, or one that cannot be read (a warning, and
    it is removed: the bundle then runs without a trial, as before markers existed)."""
    marker = trial_of(path)
    try:
        return Trial.from_dict(json.loads(read_regular_file(marker, 64 * 1024)))
    except FileNotFoundError:
        return None
    except (EdgeclfError, OSError, ValueError, RecursionError) as e:
        log.warning("%s: not a trial marker edgeclf can read (%s); ignored and removed: %s runs without a trial",
                    marker, " ".join(str(e).split())[:160], path.name)
        with contextlib.suppress(OSError):
            end_trial(path)
        return None


def _on_disk(path: Path, trial: Trial) -> bool:
    """Whether `path` still holds the bundle on trial and `<path>.previous/` the one before it."""
    here, prev = disk_manifest(path), disk_manifest(previous_of(path))
    return here is not None and prev is not None and manifest_digest(here) == trial.manifest \
        and manifest_digest(prev) == trial.previous_manifest


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


def start(path: str | os.PathLike[str], load: Callable[[Path], Classifier]
          ) -> tuple[Classifier, str | None, tuple[Classifier, Trial] | None]:
    """Load the bundle at start, after the repairs above. Returns the classifier, what was repaired, and a
    trial the last process did not finish, to go on with: (the bundle before it, loaded; the marker)."""
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
    trial, why = _trial_at_start(d, load)
    note = why if note is None else note if why is None else f"{note}; {why}"
    try:
        clf = load(Path(path) if note is None else d)
        return clf, note, _resume(d, clf, trial, load)
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
    with contextlib.suppress(OSError):
        end_trial(d)  # a trial of the refused bundle is over
    why = f"{d} cannot be used ({' '.join(str(error).split())[:200]}); moved to {rejected_of(d).name}, " \
          f"{prev.name} put back in its place"
    log.error("%s", why)
    return load(d), why, None


def _trial_at_start(d: Path, load: Callable[[Path], Classifier]) -> tuple[Trial | None, str | None]:
    """A trial the last process did not finish: counted in its marker and gone on with, or, after TRIAL_DEATHS
    deaths, rolled back here. Returns the trial to go on with, or why the bundle was rolled back."""
    trial = read_trial(d)
    try:
        if trial is None:
            return None, None
        if not _on_disk(d, trial):
            end_trial(d)
            log.info("%s: removed: %s no longer holds the bundle it tried (%s) beside the one before it",
                     trial_of(d).name, d.name, trial.sha256[:12])
            return None, None
        trial = replace(trial, starts=trial.starts + 1)
        if trial.deaths < TRIAL_DEATHS:
            write_trial(d, trial)
            return trial, None
        load(previous_of(d))  # it loads where it is before it is put in its place
        with swap_lock(d):
            if not _on_disk(d, trial):  # pushed meanwhile: that one is tried
                return None, None
            _swap_in_previous(d)
        end_trial(d)
    except (EdgeclfError, OSError) as e:
        log.error("%s: the trial of %s cannot go on (%s); it runs without a trial", trial_of(d), d.name,
                  e if isinstance(e, EdgeclfError) else f"{type(e).__name__}: {e}")
        with contextlib.suppress(OSError):
            end_trial(d)
        return None, None
    why = (f"the process stopped {trial.deaths} times during the trial of {trial.sha256[:12]} (begun {trial.time}); "
           f"moved to {rejected_of(d).name}, {previous_of(d).name} put back in its place")
    log.error("%s", why)
    return None, why


def _resume(d: Path, clf: Classifier, trial: Trial | None,
            load: Callable[[Path], Classifier]) -> tuple[Classifier, Trial] | None:
    """The trial's way back: the bundle before the one on trial, loaded (when the one loaded is on trial)."""
    try:
        if trial is None or manifest_digest(clf.manifest) != trial.manifest:
            return None
        return load(previous_of(d)), trial
    except EdgeclfError as e:
        log.error("%s: the trial of %s cannot go on (%s); it runs without a trial", trial_of(d), d.name, e)
        with contextlib.suppress(OSError):
            end_trial(d)
        return None


def _left_over(path: Path) -> list[Path]:
    """The temp folders a kill left beside the bundle (never `.incoming`: a push may be under way)."""
    p = path.name
    try:
        return [left for pattern in (f".{p}{PREVIOUS}.*.tmp", f".{p}{PREVIOUS}.*.old", f".{p}{REJECTED}.*.trash",
                                     f".{p}{TRIAL}.*.tmp.json") for left in path.parent.glob(pattern)]
    except OSError:
        return []


def _clean(path: Path) -> None:
    for left in _left_over(path):
        log.info("removing %s, left by an interrupted swap", left)
        if left.is_dir() and not left.is_symlink():
            shutil.rmtree(left, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                left.unlink()


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
