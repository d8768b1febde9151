"""--shadow BUNDLE: a second bundle classifies every Nth frame beside the main one, and how often the two
agree is reported (events, the summary, /status and /metrics), so a new model can be watched on the real
camera before it replaces the old one.

The shadow never slows or stops the main loop: the loop copies the frame into the shadow's own buffer only
when the shadow is idle (otherwise the frame is counted as `busy` and skipped), and a worker thread runs
the shadow interpreter (1 thread by default). A shadow bundle that cannot be loaded is refused before the
camera starts; any error while it runs disables it, with a `shadow_disabled` event, and the camera goes on.
Agreement compares the top-1 labels (by name) of the same frame, before smoothing and thresholds.
"""

from __future__ import annotations

import collections
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from edgeclf.bundle import load_bundle
from edgeclf.edge.model import Classifier
from edgeclf.errors import EdgeclfError, UsageError
from edgeclf.safetext import printable, redact

log = logging.getLogger(__name__)

REPORT_EVERY = 100  # a `shadow` event after this many comparisons


def check_every(every: int) -> None:
    if every < 1:
        raise UsageError(f"--shadow-every {every}: expected 1 (every frame) or more")


def check_shadow(path: Path) -> None:
    """Schema and sha256 of the shadow bundle, before the main model loads (the full load comes later)."""
    try:
        load_bundle(path)
    except EdgeclfError as e:
        raise type(e)(f"--shadow: {e}") from None


def load_shadow(path: Path, runtime: str | None, threads: int, crop: str | None, quiet: bool) -> Classifier:
    """The shadow bundle, verified and probed like the main one; any failure is one line naming --shadow."""
    try:
        return Classifier.load(path, runtime, threads, crop, quiet=quiet)
    except EdgeclfError as e:
        raise type(e)(f"--shadow: {e}") from None


NICE = 10  # the shadow thread's extra niceness: the main loop's threads come first on a busy CPU


def _lower_priority() -> None:
    """Lower this thread's CPU priority (Linux applies setpriority(PRIO_PROCESS, 0) to the calling thread)."""
    try:
        os.setpriority(os.PRIO_PROCESS, 0, min(19, os.getpriority(os.PRIO_PROCESS, 0) + NICE))
    except (AttributeError, OSError):  # not Linux/Unix, or not allowed: the shadow runs at normal priority
        pass


class Shadow:
    """Owns the shadow classifier and its worker thread; `offer()` is all the loop calls."""

    def __init__(self, clf: Classifier, every: int, emit: Callable[..., None], report_every: int = REPORT_EVERY):
        check_every(every)
        self.clf = clf
        self.every = every
        self._emit = emit
        self.report_every = report_every
        self._frame: np.ndarray | None = None
        self._job: tuple[int, str, bool] | None = None  # (frame seq, the main bundle's top-1 label, a model input)
        self._cond = threading.Condition()
        self._closing = False
        self._since = 0  # frames since the last offer
        self._window = [0, 0]  # compared, agreed since the last event
        self.pairs: collections.Counter[tuple[str, str]] = collections.Counter()  # (main, shadow) disagreements
        self.stats: dict[str, Any] = {"bundle": str(clf.bundle.path), "sha256": clf.manifest.sha256, "every": every,
                                      "enabled": True, "compared": 0, "agreed": 0, "agreement": None, "busy": 0,
                                      "invoke_ms_mean": None, "error": None}
        self._busy_s = 0.0
        self._last_seq = 0
        self._thread = threading.Thread(target=self._run, name="edgeclf-shadow", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def offer(self, image: np.ndarray, probs: np.ndarray, labels: Sequence[str], seq: int,
              model_input: np.ndarray | None = None) -> None:
        """Called by the loop for each frame (`probs`: the main bundle's, over its `labels`): every Nth one goes to
        the worker when it is idle. `model_input`: the main bundle's input for this frame when the shadow's
        preprocessing is the same (`Classifier.same_input`); it is copied instead of the (larger) frame."""
        self._since += 1
        if self._since < self.every or not self.stats["enabled"]:
            return
        self._since = 0
        main_top = labels[int(probs.argmax())]  # only for the frames offered
        src = image if model_input is None else model_input
        with self._cond:
            if self._job is not None:
                self.stats["busy"] += 1
                return
            if self._frame is None or self._frame.shape != src.shape or self._frame.dtype != src.dtype:
                self._frame = np.empty_like(src)
            np.copyto(self._frame, src)  # the capture buffers rotate: the worker gets its own copy
            self._job = (seq, main_top, model_input is not None)
            self._cond.notify()

    def _run(self) -> None:
        _lower_priority()
        while True:
            with self._cond:
                while self._job is None and not self._closing:
                    self._cond.wait()
                if self._closing:
                    return
                seq, main_top, prepared = self._job  # type: ignore[misc]
                frame = self._frame
            try:
                t0 = time.perf_counter()
                probs = self.clf.classify_input(frame) if prepared else self.clf(frame)
                self._busy_s += time.perf_counter() - t0
                shadow_label = self.clf.labels[int(np.argmax(probs))]
            except Exception as e:  # noqa: BLE001 (whatever the shadow does, the main loop goes on)
                why = redact(printable(f"{type(e).__name__}: {e}"))[:300]
                self.stats.update(enabled=False, error=why)
                log.error("--shadow: disabled after an error at frame %d (%s); the main model goes on", seq, why)
                self._emit("shadow_disabled", frame=seq, error=why, **self._figures())
                with self._cond:
                    self._job = None
                return
            self._count(main_top, shadow_label, seq)
            with self._cond:
                self._job = None

    def _count(self, main: str, shadow: str, seq: int) -> None:
        agree = main == shadow
        self._last_seq = seq
        s = self.stats
        s["compared"] += 1
        s["agreed"] += agree
        s["agreement"] = round(s["agreed"] / s["compared"], 4)
        s["invoke_ms_mean"] = round(self._busy_s / s["compared"] * 1e3, 3)
        self._window[0] += 1
        self._window[1] += agree
        if not agree:
            self.pairs[(main, shadow)] += 1
        if self._window[0] >= self.report_every:
            self._report(seq)

    def _figures(self) -> dict[str, Any]:
        s = self.stats
        return {"compared": s["compared"], "agreed": s["agreed"], "agreement": s["agreement"],
                "disagreements": [[m, sh, n] for (m, sh), n in self.pairs.most_common(5)]}

    def summary(self) -> dict[str, Any]:
        return {**self.stats, "disagreements": self._figures()["disagreements"]}

    def close(self, timeout: float = 5.0) -> None:
        """Let a running comparison finish (bounded), then stop the worker."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._job is not None and time.monotonic() < deadline and self._thread.is_alive():
                self._cond.wait(0.05)
            self._closing = True
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout=max(0.1, deadline - time.monotonic()))
        if self._window[0]:  # the last figures, however few
            self._report(self._last_seq)

    def _report(self, seq: int) -> None:
        self._emit("shadow", frame=seq, window=self._window[0],
                   window_agreement=round(self._window[1] / self._window[0], 4), **self._figures())
        self._window = [0, 0]
