"""Measure bundles on one interpreter runtime: load time, accuracy, invoke and per-frame latency, MACs, RSS.

`measure(job, runtime)` does the work for every bundle of a `Job` and returns plain JSON-able rows, so the
same code runs in this process (ai-edge-litert, tf.lite) or in another Python (tflite-runtime, through
`edgeclf.bench.worker`). Timings are interleaved: each repeat visits every bundle and thread count
in turn, so a burst of load from elsewhere lands on all variants alike; medians over repeats are kept.
Imports numpy, OpenCV and the interpreter only.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from edgeclf.bundle import Bundle, load_bundle
from edgeclf.bench.macs import count_macs
from edgeclf.edge.model import Classifier
from edgeclf.edge.runtime import Runtime
from edgeclf.errors import EdgeclfError

log = logging.getLogger(__name__)

Tick = Callable[[str], None]


@dataclass(frozen=True)
class Job:
    """What one runtime measures. Paths are absolute strings so that a job crosses a process boundary."""

    bundles: tuple[str, ...]
    eval_files: tuple[tuple[str, str], ...] = ()  # (image path, true label name)
    frame_files: tuple[str, ...] = ()  # images for the per-frame timing, or one video file
    threads: tuple[int, ...] = (1,)
    repeats: int = 5
    warmup: int = 5
    frames: int = 30
    rss: bool = True

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Job":
        return cls(bundles=tuple(d["bundles"]), eval_files=tuple(tuple(x) for x in d["eval_files"]),
                   frame_files=tuple(d["frame_files"]), threads=tuple(d["threads"]), repeats=d["repeats"],
                   warmup=d["warmup"], frames=d["frames"], rss=d["rss"])

    def steps(self) -> int:
        """Progress steps `measure` reports per runtime."""
        per_repeat = len(self.bundles) * (1 + len(self.threads))
        return self.repeats * per_repeat + len(self.bundles) * (1 + int(self.rss))


@dataclass
class _Variant:
    bundle: Bundle
    interpreters: dict[int, Classifier] = field(default_factory=dict)
    load_ms: list[float] = field(default_factory=list)
    invoke_p50: dict[int, list[float]] = field(default_factory=dict)
    invoke_p95: dict[int, list[float]] = field(default_factory=dict)
    e2e_p50: dict[int, list[float]] = field(default_factory=dict)
    e2e_p95: dict[int, list[float]] = field(default_factory=dict)
    error: str = ""


def _percentiles(samples_ms: Sequence[float]) -> tuple[float, float]:
    a = np.asarray(samples_ms, np.float64)
    return float(np.percentile(a, 50)), float(np.percentile(a, 95))


def read_frames(files: Sequence[str], count: int) -> list[np.ndarray]:
    """Decoded BGR frames: the first `count` frames of a video, or up to `count` images (cycled)."""
    import cv2

    from edgeclf.errors import SourceError
    from edgeclf.imageio import IMAGE_EXTENSIONS, read_bgr

    if len(files) == 1 and Path(files[0]).suffix.lower() not in IMAGE_EXTENSIONS:
        cap = cv2.VideoCapture(files[0])
        frames = []
        while len(frames) < count:
            ok, frame = cap.read()
            if not ok:
                break
            frames.append(frame)
        cap.release()
        if not frames:
            raise SourceError(f"{files[0]}: OpenCV decoded no frame from it; expected a video file (mp4, avi, mkv)")
        return frames
    if files:
        return [read_bgr(f) for f in files[:count]]
    rng = np.random.default_rng(0)  # no real frames given: camera-sized noise, said in the report
    return [rng.integers(0, 256, (480, 640, 3), np.uint8) for _ in range(min(count, 8))]


class _Timer:
    """Invoke-only and end-to-end timing of one edge `Classifier` (the object `edgeclf camera` runs)."""

    def __init__(self, clf: Classifier):
        self.clf = clf

    def warm(self, frames: Sequence[np.ndarray], n: int) -> None:
        for i in range(n):
            self.clf(frames[i % len(frames)])

    def invoke_ms(self, frame: np.ndarray, n: int) -> list[float]:
        self.clf.preprocess(frame)
        invoke = self.clf.invoke
        times = []
        for _ in range(n):
            t0 = time.perf_counter_ns()
            invoke()
            times.append((time.perf_counter_ns() - t0) / 1e6)
        return times

    def e2e_ms(self, frames: Sequence[np.ndarray], n: int) -> list[float]:
        """preprocess + invoke + postprocess per frame: what the camera loop does between captures."""
        clf = self.clf
        times = []
        for i in range(n):
            f = frames[i % len(frames)]
            t0 = time.perf_counter_ns()
            clf(f)
            times.append((time.perf_counter_ns() - t0) / 1e6)
        return times


def _load(rt: Runtime, path: str, threads: int) -> tuple[Classifier, float]:
    """Verify the bundle and build its classifier as the edge does; the time it took in ms."""
    t0 = time.perf_counter()
    clf = Classifier(load_bundle(path), rt, threads)
    return clf, (time.perf_counter() - t0) * 1e3


def _accuracy(clf: Classifier, images: Sequence[tuple[np.ndarray, str]]) -> tuple[float | None, list[int]]:
    """Top-1 accuracy of the edge's answer (arg-max of its probabilities) and each image's label index."""
    labels = clf.manifest.labels
    decisions = [int(np.argmax(clf(img))) for img, _ in images]
    if not images or any(t not in labels for _, t in images):
        return None, decisions
    return float(np.mean([d == labels.index(t) for d, (_, t) in zip(decisions, images)])), decisions


def measure(job: Job, rt: Runtime, tick: Tick = lambda _: None) -> list[dict[str, Any]]:
    """Rows (one per bundle and thread count) for every bundle of `job` on runtime `rt`."""
    from edgeclf.bench.footprint import measure_footprint
    from edgeclf.imageio import read_bgr

    top = max(job.threads)
    frames = read_frames(job.frame_files, job.frames)
    variants: list[_Variant] = []
    for path in job.bundles:
        v = _Variant(load_bundle(path))  # a damaged bundle is an error, not a row
        try:
            for t in job.threads:
                v.interpreters[t] = _load(rt, path, t)[0]
        except EdgeclfError as e:  # e.g. an op version this runtime lacks: a row that says so
            v.interpreters.clear()
            v.error = "does not load: " + _short(e)
            log.warning("%s on %s: %s", Path(path).name, rt.name, v.error)
        variants.append(v)
    timers = {(id(v), t): _Timer(v.interpreters[t]) for v in variants for t in v.interpreters}
    for timer in timers.values():
        timer.warm(frames, job.warmup)

    for r in range(job.repeats):
        for v in variants:
            name = v.bundle.path.name
            tick(f"{rt.name}: {name} load ({r + 1}/{job.repeats})")
            if not v.error:
                v.load_ms.append(_load(rt, str(v.bundle.path), top)[1])
            for t in job.threads:
                tick(f"{rt.name}: {name} x{t} ({r + 1}/{job.repeats})")
                if v.error:
                    continue
                timer = timers[(id(v), t)]
                p50, p95 = _percentiles(timer.invoke_ms(frames[r % len(frames)], job.frames))
                v.invoke_p50.setdefault(t, []).append(p50)
                v.invoke_p95.setdefault(t, []).append(p95)
                p50, p95 = _percentiles(timer.e2e_ms(frames, job.frames))
                v.e2e_p50.setdefault(t, []).append(p50)
                v.e2e_p95.setdefault(t, []).append(p95)

    images = [(read_bgr(p), label) for p, label in job.eval_files]
    rows: list[dict[str, Any]] = []
    for v in variants:
        m = v.bundle.manifest
        name = v.bundle.path.name
        tick(f"{rt.name}: {name} accuracy")
        acc, decisions, macs = None, [], None
        if not v.error:
            acc, decisions = _accuracy(v.interpreters[top], images)
            macs = count_macs(v.interpreters[top].interpreter)
        rss_mb = first_s = None
        if job.rss:
            tick(f"{rt.name}: {name} memory")
        if job.rss and not v.error:
            image = Path(job.eval_files[0][0]) if job.eval_files else None
            try:
                pr = measure_footprint(v.bundle.path, rt.name, top, image=image)
                rss_mb, first_s = pr.peak_rss_mb, pr.first_frame_s
            except EdgeclfError as e:
                log.warning("%s", e)
        base = {
            "bundle": str(v.bundle.path), "variant": name, "runtime": rt.name, "runtime_version": rt.version,
            "status": v.error or "ok", "size_bytes": v.bundle.path.joinpath("model.tflite").stat().st_size,
            "load_ms": _median(v.load_ms), "accuracy": acc, "n_eval": len(images) if acc is not None else 0,
            "decisions": decisions, "macs": macs, "peak_rss_mb": rss_mb, "first_frame_s": first_s,
        }
        for t in job.threads:
            p50 = _median(v.invoke_p50.get(t, []))
            e2e = _median(v.e2e_p50.get(t, []))
            rows.append({**base, "threads": t, "p50_ms": p50, "p95_ms": _median(v.invoke_p95.get(t, [])),
                         "e2e_p50_ms": e2e, "e2e_p95_ms": _median(v.e2e_p95.get(t, [])),
                         "spread_pct": _spread(v.invoke_p50.get(t, [])), "repeats": len(v.invoke_p50.get(t, [])),
                         "frames": job.frames})
    return rows


def _median(xs: Sequence[float]) -> float | None:
    return float(np.median(xs)) if len(xs) else None


def _spread(xs: Sequence[float]) -> float | None:
    """Range of the per-repeat medians as a percentage of their median: how noisy the machine was."""
    if len(xs) < 2:
        return None
    med = float(np.median(xs))
    return 100.0 * (max(xs) - min(xs)) / med if med > 0 else None


def _short(e: BaseException) -> str:
    text = " ".join(str(e).split())
    return text if len(text) <= 160 else text[:157] + "..."


def thread_counts() -> tuple[int, ...]:
    """The thread counts bench measures by default: 1 and all cores (the two figures the docs quote).

    Not `edgeclf.edge.runtime.default_threads` (one int: the threads one interpreter gets).
    """
    n = os.cpu_count() or 1
    return (1,) if n == 1 else (1, n)
