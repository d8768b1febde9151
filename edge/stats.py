"""Run statistics in constant memory: per-stage time histograms (p50/p95 over the whole run), FPS, peak RSS.

A run may last days, so stage times go into log-spaced histograms (0.5 % wide bins from 1 µs to 1000 s)
instead of lists; percentiles are read from the cumulative counts.
"""

from __future__ import annotations

import array
import math
import resource
import sys
import time
from typing import Any, Sequence

import numpy as np

STAGES = ("capture", "preprocess", "invoke", "postprocess", "output", "total")
STAGE_TITLES = {"capture": "capture wait", "preprocess": "preprocess", "invoke": "invoke",
                "postprocess": "postprocess", "output": "output (draw/save/serve)", "total": "per frame"}
_LO, _HI, _PER_DECADE = 1e-6, 1e3, 460  # bin ratio 10**(1/460) ~ 1.005


class Histogram:
    """Counts of durations in log-spaced bins; `percentile` answers within half a bin (~0.25 %)."""

    def __init__(self) -> None:
        self._n_bins = int(math.log10(_HI / _LO) * _PER_DECADE) + 1
        self.counts = array.array("q", bytes(8 * self._n_bins))  # int64 zeros; += 1 on it is cheap, on numpy not
        self.n = 0
        self.total = 0.0

    def add(self, seconds: float) -> None:
        i = 0 if seconds <= _LO else min(self._n_bins - 1, int(math.log10(seconds / _LO) * _PER_DECADE))
        self.counts[i] += 1
        self.n += 1
        self.total += seconds

    def cumulative(self, bounds: Sequence[float]) -> tuple[list[int], int]:
        """How many durations are at or below each bound (to one bin, ~0.5 % low) and how many in all."""
        cum = np.cumsum(self.counts)
        below = []
        for b in bounds:
            k = int(math.log10(b / _LO) * _PER_DECADE) if b > _LO else 0  # bins [0, k) end at or below b
            below.append(int(cum[min(k, self._n_bins) - 1]) if k > 0 else 0)
        return below, int(cum[-1])

    def percentile(self, q: float) -> float:
        if self.n == 0:
            return float("nan")
        rank = max(1, math.ceil(q / 100.0 * self.n))
        i = int(np.searchsorted(np.cumsum(self.counts), rank))
        return _LO * 10 ** ((i + 0.5) / _PER_DECADE)


class RunStats:
    """Frames, wall time and per-stage histograms of one camera run."""

    def __init__(self) -> None:
        self.stages = {s: Histogram() for s in STAGES}
        self.frames = 0
        self.started = time.monotonic()
        self.first_frame: float | None = None
        self.last_frame: float | None = None
        self._fps_ema = 0.0

    def frame_done(self, times: dict[str, float], now: float) -> None:
        for stage, seconds in times.items():
            self.stages[stage].add(seconds)
        self.frames += 1
        if self.last_frame is not None:
            dt = now - self.last_frame
            if dt > 0:
                self._fps_ema = 1.0 / dt if self._fps_ema == 0 else 0.9 * self._fps_ema + 0.1 / dt
        if self.first_frame is None:
            self.first_frame = now
        self.last_frame = now

    @property
    def fps_now(self) -> float:
        """Recent frames per second (exponential moving average), for the overlay."""
        return self._fps_ema

    def fps(self, now: float | None = None) -> float:
        elapsed = (now or time.monotonic()) - self.started
        return self.frames / elapsed if elapsed > 0 else 0.0

    def stage_ms(self) -> dict[str, dict[str, float]]:
        return {s: {"p50": round(h.percentile(50) * 1e3, 3), "p95": round(h.percentile(95) * 1e3, 3),
                    "mean": round(h.total / h.n * 1e3, 3)}
                for s, h in self.stages.items() if h.n}


def vm_hwm_kb() -> int | None:
    """This program's peak resident set in kB (VmHWM in /proc/self/status), or None off Linux. Not ru_maxrss,
    which on Linux also counts the pages of a larger parent this process was forked from before its exec (a
    camera started from a 200 MB Python program said 212 MB)."""
    try:
        with open("/proc/self/status", "rb") as f:
            for line in f:
                if line.startswith(b"VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


def peak_rss_mb() -> float:
    """Peak resident set size of this program, MB: VmHWM on Linux, else ru_maxrss (KiB, bytes on macOS)."""
    hwm = vm_hwm_kb()
    if hwm is not None:
        return round(hwm / 1024, 1)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(rss / (1024 * 1024 if sys.platform == "darwin" else 1024), 1)


def summary_dict(stats: RunStats, feed_stats: Any, extra: dict[str, Any]) -> dict[str, Any]:
    now = time.monotonic()
    seconds = now - stats.started
    return {
        "frames": stats.frames,
        "seconds": round(seconds, 3),
        "fps": round(stats.frames / seconds, 2) if seconds > 0 else 0.0,
        "stages_ms": stats.stage_ms(),
        "dropped": feed_stats.dropped,
        "reconnects": feed_stats.reconnects,
        "stalls": feed_stats.stalls,
        "source_errors": feed_stats.source_errors,
        "skipped": feed_stats.skipped,
        "peak_rss_mb": peak_rss_mb(),
        **extra,
    }


def format_summary(s: dict[str, Any]) -> str:
    """The summary as a few readable lines (stderr at exit)."""
    lines = [f"{s['frames']} frames in {s['seconds']:.1f} s ({s['fps']:.1f} FPS), {s['dropped']} dropped, "
             f"{s['reconnects']} reconnects, {s['stalls']} stalls, peak RSS {s['peak_rss_mb']:.0f} MB"
             + (f", {s['skipped']} files skipped" if s.get("skipped") else "")
             + (f" [{s['stopped']}]" if s.get("stopped") else "")]
    if s["stages_ms"]:
        lines.append(f"  {'stage':<26}{'p50 ms':>9}{'p95 ms':>9}")
        for stage, v in s["stages_ms"].items():
            lines.append(f"  {STAGE_TITLES.get(stage, stage):<26}{v['p50']:>9.2f}{v['p95']:>9.2f}")
    return "\n".join(lines)
