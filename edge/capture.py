"""Frames for the loop: every frame of a file, or the newest frame of a live source with reconnects.

`FileFeed` reads a file or folder every frame, in order: a reader thread decodes one or two frames ahead
(decode overlaps inference) into rotating buffers, blocking rather than dropping.

`LiveFeed` reads in a capture thread and keeps only the newest frame (older unconsumed ones are counted
as dropped), so a slow model never classifies a stale frame. Read failures and disconnects close the
source and reopen a fresh one with exponential back-off; a watchdog in `next()` notices a read (or open)
that has blocked longer than the stall timeout, abandons that thread (its frames are never used) and
reopens. Every frame gets a run-wide sequence number and the consumer only ever moves forward, so no frame
is classified twice. Three image buffers rotate between the capture thread and the loop.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, NamedTuple

import numpy as np

from edgeclf.edge.sources import FrameSource, SourceReadError
from edgeclf.errors import SourceError
from edgeclf.safetext import redact

log = logging.getLogger(__name__)

Emit = Callable[..., None]


class Captured(NamedTuple):
    image: np.ndarray
    name: str
    seq: int  # run-wide, strictly increasing in what the loop receives
    t: float  # time.monotonic() when it was read


@dataclass
class FeedStats:
    dropped: int = 0  # newer frame arrived before the loop took this one
    reconnects: int = 0  # successful reopens after a failure or stall
    source_errors: int = 0  # read failures and failed reopen attempts
    stalls: int = 0  # watchdog firings
    skipped: int = 0  # unreadable files in a folder


class FileFeed:
    """A file or folder: every frame, in order, no drops. A reader thread decodes the next frame while the
    loop works on this one (at most `depth` frames ahead, in rotating buffers)."""

    _END = object()

    def __init__(self, source: FrameSource, depth: int = 2):
        self.source = source
        self.name = source.name
        self.stats = FeedStats()
        self._seq = 0
        self._ready: queue.Queue[Any] = queue.Queue()
        self._free: queue.Queue[np.ndarray | None] = queue.Queue()
        for _ in range(depth + 1):  # one in the loop's hands, `depth` decoded ahead
            self._free.put(None)
        self._held: np.ndarray | None = None
        self._closing = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self.source.open()
        self._thread = threading.Thread(target=self._run, name="edgeclf-reader", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while not self._closing.is_set():
                try:
                    buf = self._free.get(timeout=0.1)
                except queue.Empty:
                    continue
                fr = self.source.read(buf)
                if fr is None:
                    break
                self._ready.put((fr, time.monotonic()))
        except Exception as e:  # handed to the loop, which raises it
            self._ready.put(e)
        self._ready.put(self._END)

    def next(self, stop: threading.Event) -> Captured | None:
        while not stop.is_set():
            try:
                item = self._ready.get(timeout=0.1)
            except queue.Empty:
                continue
            self.stats.skipped = getattr(self.source, "skipped", 0)
            if item is self._END:
                self._ready.put(item)
                return None
            if isinstance(item, Exception):
                raise item
            fr, t = item
            if self._held is not None:
                self._free.put(self._held)
            self._held = fr.image
            self._seq += 1
            return Captured(fr.image, fr.name, self._seq, t)
        return None

    def close(self) -> None:
        self._closing.set()
        if self._thread is not None:
            while self._thread.is_alive():  # unblock a reader waiting for a free buffer
                self._free.put(None)
                self._thread.join(timeout=0.1)
        self.source.close()


class LiveFeed:
    """A live source read in a capture thread: newest frame only, reconnect with back-off, stall watchdog."""

    def __init__(self, factory: Callable[[], FrameSource], emit: Emit, stall_timeout: float = 5.0,
                 backoff: tuple[float, float] = (0.5, 30.0), pace: bool = False):
        self.factory = factory
        self.emit = emit
        self.stall_timeout = stall_timeout
        self.backoff = backoff
        self.pace = pace  # a file under --realtime: read at its own frame rate
        self.stats = FeedStats()
        self.name = "source"
        self._cond = threading.Condition()
        self._closing = threading.Event()
        self._gen = 0
        self._seq = 0
        self._slot: Captured | None = None
        self._held: np.ndarray | None = None
        self._free: list[np.ndarray] = []
        self._ended = False
        self._busy: tuple[int, str, float] | None = None  # (generation, "open"/"read", since)
        self._threads: list[threading.Thread] = []

    # -- capture thread -------------------------------------------------------------------------
    def start(self, first: FrameSource | None = None) -> None:
        """Open the source once (errors go to the caller: no camera -> one line), then capture in a thread."""
        src = first or self.factory()
        self.name = src.name
        src.open()
        self._spawn(src)

    def _spawn(self, src: FrameSource | None) -> None:
        with self._cond:
            self._gen += 1
            gen = self._gen
        t = threading.Thread(target=self._run, args=(gen, src), name=f"edgeclf-capture-{gen}", daemon=True)
        self._threads = [th for th in self._threads if th.is_alive()] + [t]
        t.start()

    def _current(self, gen: int) -> bool:
        return gen == self._gen and not self._closing.is_set()

    def _set_busy(self, gen: int, what: str | None) -> None:
        with self._cond:
            if gen == self._gen:
                self._busy = (gen, what, time.monotonic()) if what else None

    def _run(self, gen: int, src: FrameSource | None) -> None:
        wait = 0.0 if src is None else self.backoff[0]
        t0, n = time.monotonic(), 0
        try:
            while self._current(gen):
                if src is None:
                    src = self._reopen(gen, wait)
                    if src is None:
                        return
                    wait, t0, n = self.backoff[0], time.monotonic(), 0
                with self._cond:
                    buf = self._free.pop() if self._free else None
                self._set_busy(gen, "read")
                try:
                    fr = src.read(buf)
                except Exception as e:  # SourceReadError, or a driver's own exception
                    self._set_busy(gen, None)
                    if not self._current(gen):
                        return
                    msg = redact(str(e) if isinstance(e, SourceError) else f"{src.name}: {type(e).__name__}: {e}")
                    self.stats.source_errors += 1
                    self.emit("source_error", error=msg, retry_in_s=round(wait, 2))
                    log.warning("%s; reconnecting in %.1f s", msg, wait)
                    src.close()
                    src = None
                    continue
                self._set_busy(gen, None)
                if not self._current(gen):
                    return  # abandoned by the watchdog: this frame is never used
                if fr is None:
                    with self._cond:
                        self._ended = True
                        self._cond.notify_all()
                    return
                wait = self.backoff[0]
                if self.pace and src.fps > 0:
                    n += 1
                    delay = t0 + n / src.fps - time.monotonic()
                    if delay > 0 and self._closing.wait(delay):
                        return
                self._publish(gen, fr.image, fr.name)
        finally:
            if src is not None:
                src.close()

    def _reopen(self, gen: int, wait: float) -> FrameSource | None:
        attempt = 0
        while self._current(gen):
            if wait > 0 and self._closing.wait(wait):
                return None
            attempt += 1
            src = self.factory()
            self._set_busy(gen, "open")
            try:
                src.open()
            except Exception as e:
                self._set_busy(gen, None)
                src.close()
                if not self._current(gen):
                    return None
                wait = min(max(wait * 2, self.backoff[0]), self.backoff[1])
                self.stats.source_errors += 1
                msg = redact(str(e) if isinstance(e, SourceError) else f"{type(e).__name__}: {e}")
                self.emit("reconnect_failed", attempt=attempt, error=msg, retry_in_s=round(wait, 2))
                log.warning("reopen %d failed: %s; next try in %.1f s", attempt, msg, wait)
                continue
            self._set_busy(gen, None)
            if not self._current(gen):
                src.close()
                return None
            self.stats.reconnects += 1
            self.emit("reconnected", source=src.name, attempts=attempt)
            log.warning("%s: reconnected after %d attempt(s)", src.name, attempt)
            return src
        return None

    def _publish(self, gen: int, image: np.ndarray, name: str) -> None:
        with self._cond:
            if gen != self._gen:
                return
            if self._slot is not None:
                self.stats.dropped += 1
                self._recycle(self._slot.image)
            self._seq += 1
            self._slot = Captured(image, name, self._seq, time.monotonic())
            self._cond.notify_all()

    def _recycle(self, image: np.ndarray) -> None:
        if len(self._free) < 2:
            self._free.append(image)

    # -- the loop's side ----------------------------------------------------------------------------
    def next(self, stop: threading.Event) -> Captured | None:
        """The newest frame not yet handed out; None when the source ended or `stop` is set.

        `stop` is looked at first: when the camera is faster than the model (a slow CPU), a frame is always
        waiting, and a stop that came second to it would never end the run."""
        with self._cond:
            while True:
                if stop.is_set() or self._closing.is_set():
                    return None
                if self._slot is not None:
                    got, self._slot = self._slot, None
                    if self._held is not None:
                        self._recycle(self._held)
                    self._held = got.image
                    return got
                if self._ended:
                    return None
                self._cond.wait(0.1)
                self._watchdog()

    def _watchdog(self) -> None:
        """Called with the lock held: reopen when a read or open has blocked past the stall timeout."""
        if self._busy is None or self.stall_timeout <= 0:
            return
        gen, what, since = self._busy
        blocked = time.monotonic() - since
        if gen != self._gen or blocked < self.stall_timeout:
            return
        self._busy = None
        self.stats.stalls += 1
        self._cond.release()
        try:
            self.emit("stall", source=self.name, seconds=round(blocked, 2), during=what)
            log.warning("%s: no frame for %.1f s (blocked in %s); reopening", self.name, blocked, what)
            alive = sum(t.is_alive() for t in self._threads)
            if alive > 4:
                log.warning("%d capture threads are stuck in the driver; the device may need a replug", alive)
            self._spawn(None)  # the stuck thread keeps its source and closes it if the read ever returns
        finally:
            self._cond.acquire()

    def close(self) -> None:
        self._closing.set()
        with self._cond:
            self._gen += 1
            self._cond.notify_all()
        deadline = time.monotonic() + 2.0  # a thread stuck in a driver is left behind (daemon)
        for t in self._threads:
            t.join(timeout=max(0.0, deadline - time.monotonic()))
