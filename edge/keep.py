"""`edgeclf camera --capture DIR`: keep the frames worth labelling, for the next training run.

A frame is kept when its answer is not a class (uncertain/unknown), its top score is low, the stable label
just flipped, or, now and then, at random (a slow sample of ordinary frames, so the next run also sees what
the model gets right). Kept frames are rate-limited (`interval` seconds apart), near-duplicates are skipped
(a 16x16 grey thumbnail compared by mean absolute difference with the last kept ones) and the folder stays
under a disk cap (the oldest kept frames go first).

The frame loop only decides and copies the frame into a bounded queue; a writer thread encodes a JPEG and
writes it atomically to `DIR/<top-1 class>/<time>-<frame>-<reason>.jpg` with a JSON sidecar of the same
stem (answer, score, reason, time, bundle sha256). A full queue drops the frame (counted), never stalls the
loop. A write that fails (disk full, read-only folder) stops capturing with one `capture_error` event;
`edgeclf camera` then exits non-zero at the end, as a service manager must see.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import random
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from edgeclf.atomic import write_bytes
from edgeclf.errors import UsageError

log = logging.getLogger(__name__)

REASONS = ("unknown", "low", "flip", "sample")
FRAME_SUFFIX = ".jpg"
SIDECAR_SUFFIX = ".json"
_NAME = re.compile(r"^\d{8}T\d{6}\.\d{3}Z-\d+-[a-z]+\.jpg$")  # what this module writes (and may evict)
_UNSAFE = re.compile(r"[\x00-\x1f\x7f/\\:*?\"<>|]")
THUMB = 16  # thumbnail side for the near-duplicate test
RECENT = 16  # kept thumbnails compared with


@dataclass(frozen=True)
class CaptureConfig:
    """--capture DIR and its limits.

    below: keep frames whose top probability is under this; interval: at least this many seconds between
    kept frames (0: no limit); sample: mean seconds between random keeps (0: none); max_mb: disk cap of the
    folder's kept frames; duplicate: mean absolute difference (0-255, 16x16 grey) under which a frame is a
    near-duplicate of a kept one; queue: frames waiting for the writer.
    """

    dir: Path
    below: float = 0.6
    interval: float = 5.0
    sample: float = 600.0
    max_mb: float = 500.0
    duplicate: float = 3.0
    queue: int = 8
    jpeg_quality: int = 92
    seed: int | None = None

    def validate(self) -> None:
        if not 0.0 <= self.below <= 1.0:
            raise UsageError(f"--capture-below {self.below}: expected a probability between 0 and 1")
        if self.interval < 0 or self.sample < 0:
            raise UsageError("--capture-interval and --capture-sample: expected seconds >= 0 (0: off)")
        if not self.max_mb > 0:
            raise UsageError(f"--capture-max-mb {self.max_mb}: expected a positive size in MB")
        if self.queue < 1:
            raise UsageError(f"capture queue {self.queue}: expected 1 or more")
        d = self.dir
        if d.exists() and not d.is_dir():
            raise UsageError(f"--capture {d}: is a file; give a folder for the kept frames")
        probe = d if d.exists() else next((p for p in d.parents if p.exists()), Path("."))
        if not os.access(probe, os.W_OK | os.X_OK):
            raise UsageError(f"--capture {d}: cannot write there (read-only or not yours); pick a writable folder")


def safe_dirname(label: str) -> str:
    """A label as one folder name: separators and control characters become _, no leading dot."""
    name = _UNSAFE.sub("_", label).strip() or "_"
    if name.startswith("."):
        name = "_" + name
    return name[:100]


def thumbnail(frame: np.ndarray) -> np.ndarray:
    import cv2

    small = cv2.resize(frame, (THUMB, THUMB), interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(small, cv2.COLOR_BGR2GRAY) if small.ndim == 3 else small


class Keeper:
    """Decides per frame (in the loop) and writes (in its own thread). `stats` goes into the summary."""

    def __init__(self, config: CaptureConfig, emit: Callable[..., None], bundle_sha256: str):
        config.validate()
        self.config = config
        self.emit = emit
        self.sha256 = bundle_sha256
        self.stats: dict[str, Any] = {"dir": str(config.dir), "kept": 0, "reasons": {r: 0 for r in REASONS},
                                      "duplicates": 0, "rate_limited": 0, "dropped": 0, "evicted": 0,
                                      "bytes": 0, "error": None}
        self._rng = random.Random(config.seed)
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=config.queue)
        self._recent: list[np.ndarray] = []
        self._last_kept = -float("inf")
        self._next_sample = self._draw_sample(time.monotonic())
        self._failed = threading.Event()
        self._cap = int(config.max_mb * 1024**2)
        try:
            config.dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise UsageError(f"--capture {config.dir}: cannot create it ({e.strerror}); pick a writable folder") from None
        self._files = self._scan()  # (mtime, path, bytes) oldest first: what the cap may evict
        self.stats["bytes"] = sum(n for _, _, n in self._files)
        self._thread = threading.Thread(target=self._run, name="edgeclf-capture", daemon=True)
        self._thread.start()

    @property
    def failed(self) -> bool:
        return self._failed.is_set()

    def _draw_sample(self, now: float) -> float:
        s = self.config.sample
        return now + self._rng.expovariate(1.0 / s) if s > 0 else float("inf")

    def _scan(self) -> list[tuple[float, Path, int]]:
        found = []
        for p in self.config.dir.glob("*/*" + FRAME_SUFFIX):
            if _NAME.match(p.name):
                try:
                    st = p.stat()
                    side = p.with_suffix(SIDECAR_SUFFIX)
                    extra = side.stat().st_size if side.exists() else 0
                except OSError:
                    continue
                found.append((st.st_mtime, p, st.st_size + extra))
        return sorted(found)

    def reason(self, answer_index: int, score: float, changed: bool, had_label: bool, now: float) -> str | None:
        """Why this frame is worth keeping, or None. `answer_index` < 0: the answer is not a class."""
        if answer_index < 0:
            return "unknown"
        if score < self.config.below:
            return "low"
        if changed and had_label:
            return "flip"
        if now >= self._next_sample:
            self._next_sample = self._draw_sample(now)
            return "sample"
        return None

    def offer(self, frame: np.ndarray, answer: str, answer_index: int, probs: np.ndarray, labels: tuple[str, ...],
              changed: bool, had_label: bool, seq: int, name: str = "") -> str | None:
        """Called once per frame by the loop; returns the reason when the frame was queued for writing."""
        if self._failed.is_set():
            return None
        now = time.monotonic()
        top = int(probs.argmax())
        score = float(probs[top])
        why = self.reason(answer_index, score, changed, had_label, now)
        if why is None:
            return None
        if now - self._last_kept < self.config.interval:
            self.stats["rate_limited"] += 1
            return None
        thumb = thumbnail(frame)
        t16 = thumb.astype(np.int16)
        if any(float(np.abs(t16 - r).mean()) < self.config.duplicate for r in self._recent):
            self.stats["duplicates"] += 1
            return None
        meta = {"answer": answer, "label": labels[top], "score": round(score, 4), "reason": why,
                "time": _utc_now(), "frame": seq, "bundle_sha256": self.sha256,
                "probs": {lab: round(float(p), 4) for lab, p in zip(labels, probs)}}
        if name:
            meta["file"] = name
        try:
            self._queue.put_nowait((frame.copy(), meta))
        except queue.Full:
            self.stats["dropped"] += 1
            return None
        self._last_kept = now
        self._recent = (self._recent + [t16])[-RECENT:]
        return why

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            if self._failed.is_set():
                self.stats["dropped"] += 1
                continue
            frame, meta = item
            try:
                self._write(frame, meta)
            except Exception as e:  # noqa: BLE001 - any failure stops capturing with one event, never the loop
                why = f"{e.strerror} (errno {e.errno})" if isinstance(e, OSError) and e.strerror else str(e)[:200]
                self.stats["error"] = why
                self._failed.set()
                log.error("--capture %s: cannot write a kept frame (%s); capturing stops, classifying goes on",
                          self.config.dir, why)
                self.emit("capture_error", dir=str(self.config.dir), error=why)

    def _write(self, frame: np.ndarray, meta: dict[str, Any]) -> None:
        import cv2

        ok, jpg = cv2.imencode(FRAME_SUFFIX, frame, [cv2.IMWRITE_JPEG_QUALITY, self.config.jpeg_quality])
        if not ok:
            raise ValueError("OpenCV could not encode the frame as JPEG")
        folder = self.config.dir / safe_dirname(meta["label"])
        stem = f"{meta['time'].replace('-', '').replace(':', '').replace('+0000', 'Z')}-{meta['frame']}-{meta['reason']}"
        image = folder / (stem + FRAME_SUFFIX)
        side = json.dumps(meta, ensure_ascii=False, indent=1).encode("utf-8") + b"\n"
        size = len(jpg) + len(side)
        self._evict(size)
        write_bytes(image, jpg.tobytes())  # the image first: a sidecar always has its image
        write_bytes(image.with_suffix(SIDECAR_SUFFIX), side)
        self._files.append((time.time(), image, size))
        self.stats["bytes"] += size
        self.stats["kept"] += 1
        self.stats["reasons"][meta["reason"]] += 1

    def _evict(self, incoming: int) -> None:
        """Remove the oldest kept frames (and sidecars) until `incoming` more bytes fit under the cap."""
        while self._files and self.stats["bytes"] + incoming > self._cap:
            _, path, size = self._files.pop(0)
            for p in (path, path.with_suffix(SIDECAR_SUFFIX)):
                try:
                    p.unlink()
                except FileNotFoundError:  # moved away by whoever relabels: no longer ours to count
                    pass
            self.stats["bytes"] -= size
            self.stats["evicted"] += 1

    def close(self, timeout: float = 30.0) -> None:
        """Write what is queued (up to `timeout` seconds), then stop the writer."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                self._queue.put(None, timeout=0.1)
                break
            except queue.Full:
                if time.monotonic() > deadline:
                    break
        self._thread.join(max(0.0, deadline - time.monotonic()))
        self.stats["pending"] = self._queue.qsize()


def _utc_now() -> str:
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t * 1000) % 1000:03d}+0000"
