"""Safe model updates for `edgeclf camera`: SIGHUP, or `--watch` seeing the bundle folder replaced.

A reload thread verifies the new bundle completely before the loop sees it: `Classifier.load` (manifest
schema, sha256, TFLite checks, first load probed in a child process, tensors against the manifest), then a
self-test on the sample frames the bundle carries (`edgeclf.samples`: each one's sha256, and the outputs
it must give within the manifest's tolerance; a bundle made before samples existed skips this, with a
note in the event). Only a fully loaded, tested classifier is handed over, and the loop swaps it in
between two frames: no frame is lost or classified by a half-loaded model.

The previous classifier stays loaded for a trial of `trial_frames` frames. When the new one's rate of
frames that are not a class (uncertain/unknown) or not finite is more than `max_rise` above what the old
one showed over its last `trial_frames` frames, the loop swaps the old one back. Every step is an event:
`reload_started`, `reload_failed` (stage and why; the running bundle stays), `reloaded`,
`reload_confirmed` or `reload_rolled_back` (why).

The disk follows (edge/rollback.py), in this thread, never the loop's: before a new bundle is handed over,
`<bundle>.previous/` is made to hold the running one (`previous_kept`) and `<bundle>.trial.json` says a
trial is on (removed when it ends); after a failure or a rollback the refused folder becomes
`<bundle>.rejected/` and the running bundle is put back at `<bundle>` (`bundle_restored`), so a restart
runs the known-good bundle. A restart during a trial goes on with it (`reload_trial_resumed`: the marker's
baseline, the previous bundle loaded as the way back), or rolls back at start after repeated deaths
(edge/rollback.py). A disk that cannot be written is an event (`bundle_disk_failed`), never a stop. One
reload at a time: a new one waits for the trial to end.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import threading
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np

from edgeclf.bundle import MANIFEST_FILE, MODEL_FILE, Manifest, resolve_bundle_dir
from edgeclf.edge import rollback
from edgeclf.edge.model import Classifier
from edgeclf.errors import BundleError, EdgeclfError, UsageError
from edgeclf.samples import sample_bytes

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReloadConfig:
    """--watch, --watch-interval, --trial-frames and --max-unknown-rise."""

    watch: bool = False
    interval: float = 1.0  # seconds between looks at the bundle folder
    trial_frames: int = 30
    max_rise: float = 0.3  # allowed rise of the not-a-class rate over the old bundle's, 0..1

    def validate(self) -> None:
        if not 0.05 <= self.interval <= 3600:
            raise UsageError(f"--watch-interval {self.interval}: expected 0.05 to 3600 seconds")
        if self.trial_frames < 1:
            raise UsageError(f"--trial-frames {self.trial_frames}: expected 1 or more")
        if not 0.0 <= self.max_rise <= 1.0:
            raise UsageError(f"--max-unknown-rise {self.max_rise}: expected a rate between 0 and 1")


def self_test(clf: Classifier) -> str:
    """Run the bundle's sample frames; raise BundleError when an output is off. Returns what was done."""
    from edgeclf.imageio import decode_bgr

    samples = clf.manifest.samples
    if samples is None or not samples.items:
        return "skipped: the bundle carries no sample frames (made before edgeclf wrote them)"
    worst = 0.0
    for s in samples.items:
        probs = np.asarray(clf(decode_bgr(sample_bytes(clf.bundle.path, s), s.file)), np.float64)
        diff = float(np.max(np.abs(probs - np.asarray(s.probs))))
        if not np.isfinite(diff) or diff > samples.tolerance:
            raise BundleError(f"{clf.bundle.path / s.file}: the model answers {np.round(probs, 4).tolist()}, the "
                              f"manifest expects {list(s.probs)} (tolerance {samples.tolerance}); this model does not "
                              "behave as converted; re-copy the bundle or re-convert")
        worst = max(worst, diff)
    return f"passed: {len(samples.items)} sample frame(s), largest difference {worst:.4f}"


def _signature(path: Path) -> tuple[Any, ...] | None:
    """What changes when the folder is renamed over, a symlink repointed or its files rewritten."""
    try:
        d = os.stat(path)
        files = tuple((s.st_ino, s.st_mtime_ns, s.st_size) for s in (os.stat(path / MANIFEST_FILE),
                                                                      os.stat(path / MODEL_FILE)))
        return (d.st_dev, d.st_ino) + files
    except OSError:
        return None  # mid-swap, or gone: look again later


class Reloader:
    """Loads candidates in its own thread; the loop calls `between_frames` and `observe` once per frame."""

    def __init__(self, path: str | os.PathLike[str], config: ReloadConfig, current: Classifier,
                 emit: Callable[..., None], load: Callable[[Path], Classifier],
                 resume: tuple[Classifier, rollback.Trial] | None = None):
        config.validate()
        self.path = resolve_bundle_dir(path)
        self.config = config
        self.current = current
        self._load = load
        self.emit = emit
        self.stats: dict[str, Any] = {"reloaded": 0, "failed": 0, "rolled_back": 0, "disk_failed": 0,
                                      "sha256": current.manifest.sha256}
        self._wake = threading.Event()
        self._closing = threading.Event()
        self._trigger: str | None = None
        self._lock = threading.Lock()
        self._ready: tuple[Classifier, str, str, float] | None = None  # classifier, trigger, self-test note, old rate
        self._previous: Classifier | None = None  # kept for a rollback while the new one is on trial
        self._trial: list[bool] = []
        self._judge = (0.0, config.trial_frames)  # the trial's: the old bundle's rate, and its length
        self._marker: rollback.Trial | None = None  # <bundle>.trial.json, written by this thread (or at start)
        self._ended = False  # the loop ended the trial: this thread removes the marker
        self._clean = False  # the loop stopped without an error: a trial still on is not a death
        self._baseline: collections.deque[bool] = collections.deque(maxlen=config.trial_frames)
        self._rollback: str | None = None
        self._restore: tuple[Manifest, str] | None = None  # (refused bundle, why): the disk gets the running one back
        self._files: dict[Classifier, rollback.SampleFiles | None] = {current: rollback.sample_files(current)}
        if resume is not None:  # a trial the last process did not finish (rollback.start)
            self._previous, self._marker = resume
            self._judge = (self._marker.baseline_rate, self._marker.trial_frames)
            self._files[self._previous] = rollback.sample_files(self._previous)
        self._seen = _signature(self.path)
        self._thread = threading.Thread(target=self._run, name="edgeclf-reload", daemon=True)
        self._thread.start()

    def announce(self) -> None:
        """After the `start` event: a trial cut short by the last process's end goes on."""
        if (t := self._marker) is not None and self._previous is not None:
            self.emit("reload_trial_resumed", bundle=str(self.path), sha256=t.sha256, previous=t.previous_sha256,
                      starts=t.starts, deaths=t.deaths, trial_frames=t.trial_frames, previous_rate=t.baseline_rate,
                      begun=t.time)
            log.warning("reload: the trial of %s goes on (start %d of it)", t.sha256[:12], t.starts)

    def request(self, trigger: str = "SIGHUP") -> None:
        """Ask for a reload (safe from a signal handler: only sets an event)."""
        self._trigger = trigger
        self._wake.set()

    def _run(self) -> None:
        pending: tuple[Any, ...] | None = None
        while not self._closing.is_set():
            self._wake.wait(self.config.interval if self.config.watch else None)
            if self._closing.is_set():
                return
            trigger = None
            if self._wake.is_set():
                self._wake.clear()
                self._after_trial()
                trigger, self._trigger = self._trigger, None
            elif self.config.watch:
                sig = _signature(self.path)
                if sig is not None and sig != self._seen:
                    if sig == pending:  # unchanged for one interval: the copy is complete
                        trigger = "watch"
                    pending = sig
            if trigger is None:
                continue
            pending = None
            self._seen = _signature(self.path)
            self._prepare(trigger)

    def _prepare(self, trigger: str) -> None:
        while self._previous is not None or self._ready is not None:  # a trial runs: the bundle to keep is not known
            if self._closing.wait(0.05):
                return
            self._after_trial()
        self._after_trial()
        self._seen = seen = _signature(self.path)  # what this reload loads (it may have changed while waiting)
        self.emit("reload_started", trigger=trigger, bundle=str(self.path))
        stage = "verify and load"
        try:
            clf = self._load(self.path)
            stage = "self-test"
            note = self_test(clf)
            files = rollback.sample_files(clf)
        except EdgeclfError as e:
            self._fail(trigger, stage, str(e), seen)
            return
        except Exception as e:  # noqa: BLE001 - whatever a bad bundle does, the running one stays
            self._fail(trigger, stage, f"{type(e).__name__}: {' '.join(str(e).split())[:200]}", seen)
            return
        current = self.current
        kept = self._files.get(current)
        rate, frames = _rate(self._baseline)  # what the trial is judged against, here and after a restart
        if clf.manifest != current.manifest and self._disk(
                "previous_kept", lambda: rollback.keep_previous(self.path, current, kept), sha256=current.manifest.sha256):
            marker = rollback.Trial.begin(clf.manifest, current.manifest, rate, frames, self.config.trial_frames)
            if self._disk("trial_marker", lambda: rollback.write_trial(self.path, marker)):
                self._marker = marker
        self._files = {current: kept, clf: files}  # the one running and the one to come
        with self._lock:
            self._ready = (clf, trigger, note, rate)

    def _fail(self, trigger: str, stage: str, why: str, seen: tuple[Any, ...] | None) -> None:
        self.stats["failed"] += 1
        log.error("reload (%s): %s failed: %s; the running bundle stays", trigger, stage, why)
        self.emit("reload_failed", trigger=trigger, stage=stage, error=why, kept=self.current.manifest.sha256)
        self._put_back(f"reload failed at {stage}", lambda: _signature(self.path) == seen)

    def _after_trial(self) -> None:
        """The loop ended a trial: after a rollback, the running bundle back on disk unless another one was
        pushed since; then the trial's marker removed (in that order: a kill between leaves a stale marker)."""
        ended = self._ended  # read first: the loop sets `_restore` before `_ended`
        if self._restore is not None:
            refused, why = self._restore
            self._restore = None
            self._put_back(f"rolled back: {why}", lambda: rollback.disk_manifest(self.path) == refused)
        if ended:
            self._ended = False
            if self._marker is not None:
                self._marker = None
                self._disk("trial_marker", lambda: rollback.end_trial(self.path))

    def _put_back(self, why: str, refused: Callable[[], bool]) -> None:
        """The running bundle back on disk, if what is there is still the refused one (checked under the lock)."""
        current = self.current

        def ours() -> None:  # our own renames are not a new bundle for --watch
            self._seen = _signature(self.path)

        self._disk("bundle_restored", lambda: rollback.put_back(self.path, current, self._files.get(current),
                                                                refused, ours),
                   sha256=current.manifest.sha256, rejected=str(rollback.rejected_of(self.path)), why=why)

    def _disk(self, event: str, act: Callable[[], str | None], **fields: Any) -> bool:
        """One step of the disk's rollback (edge/rollback.py) as an event; a failure is an event too, not a stop."""
        try:
            how = act()
        except (EdgeclfError, OSError) as e:
            why = str(e) if isinstance(e, EdgeclfError) else f"{type(e).__name__}: {e}"
            log.error("reload: %s: %s; a restart may run the bundle now in %s", event, why, self.path)
            self.emit("bundle_disk_failed", step=event, error=why, bundle=str(self.path))
            self.stats["disk_failed"] += 1
            return False
        if how is not None:
            self.emit(event, bundle=str(self.path), how=how, **fields)
        return True

    def between_frames(self) -> Classifier | None:
        """The classifier to use from this frame on when it changes (a new one, or the old one back)."""
        if self._rollback is not None:
            old, new = self._previous, self.current
            assert old is not None
            self.emit("reload_rolled_back", sha256=new.manifest.sha256, back_to=old.manifest.sha256,
                      why=self._rollback)
            log.error("reload: rolled back to %s: %s", old.manifest.sha256[:12], self._rollback)
            self.stats["rolled_back"] += 1
            self._restore, self._ended = (new.manifest, self._rollback), True
            self.current, self._previous, self._rollback, self._trial = old, None, None, []
            self.stats["sha256"] = old.manifest.sha256
            self._wake.set()  # the reload thread puts `old` back on disk, then removes the trial's marker
            return old
        if self._ready is None or self._previous is not None:  # one trial at a time
            return None
        with self._lock:
            clf, trigger, note, rate = self._ready
            self._ready = None
        self._previous, self.current, self._trial = self.current, clf, []
        self._judge = (rate, self.config.trial_frames)
        self.stats["reloaded"] += 1
        self.stats["sha256"] = clf.manifest.sha256
        self.emit("reloaded", trigger=trigger, bundle=str(self.path), sha256=clf.manifest.sha256,
                  previous=self._previous.manifest.sha256, labels=list(clf.labels), self_test=note,
                  trial_frames=self.config.trial_frames)
        log.info("reload: %s in use (%s)", clf.manifest.sha256[:12], note)
        return clf

    def observe(self, index: int, probs: np.ndarray) -> None:
        """One frame's answer: not a class (index < 0) or not finite counts against the bundle in use."""
        bad = index < 0 or not bool(np.isfinite(probs).all())
        if self._previous is None:
            self._baseline.append(bad)
            return
        self._trial.append(bad)
        old, length = self._judge
        if len(self._trial) < length:
            return
        new = sum(self._trial) / len(self._trial)
        if new > old + self.config.max_rise:
            self._rollback = (f"not-a-class/error rate {new:.2f} in its first {len(self._trial)} frames against "
                              f"{old:.2f} before it (allowed rise {self.config.max_rise})")
            return
        self.emit("reload_confirmed", sha256=self.current.manifest.sha256, frames=len(self._trial),
                  rate=round(new, 4), previous_rate=round(old, 4))
        self._ended = True
        self._previous, self._trial = None, []
        self._baseline = collections.deque(maxlen=self.config.trial_frames)
        self._wake.set()  # the reload thread removes the trial's marker

    def stopping(self, clean: bool) -> dict[str, Any]:
        """The loop is done (`clean`: without an error); returns the summary's `reload`."""
        self._clean = clean
        return dict(self.stats)

    def close(self) -> None:
        self._closing.set()
        self._wake.set()
        self._thread.join(timeout=120)
        if self._thread.is_alive():
            return
        self._after_trial()  # a trial ended in the last frames: the disk still follows
        if self._clean and (t := self._marker) is not None:  # still on: the next start goes on with it, no death
            marker = replace(t, clean_stops=t.clean_stops + 1)
            self._disk("trial_marker", lambda: rollback.write_trial(self.path, marker))


def _rate(seen: collections.deque[bool]) -> tuple[float, int]:
    """The not-a-class/error rate over the frames in `seen` (a deque the loop appends to meanwhile)."""
    for _ in range(3):
        with contextlib.suppress(RuntimeError):  # "deque mutated during iteration"
            frames = list(seen)
            return (sum(frames) / len(frames) if frames else 0.0), len(frames)
    return 0.0, 0
