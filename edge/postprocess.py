"""From class probabilities to an answer: top-k, an "uncertain" threshold, and temporal smoothing.

`Smoother` keeps the last N probability vectors (moving average) or top-1 votes (majority) in fixed
buffers and decides a *stable* label with hysteresis: the label changes only when another class leads the
current one by more than `hysteresis` in the smoothed scores (a tie keeps it), and a class is entered at
`threshold` but only left (to "uncertain") below `threshold - hysteresis`. So a score wobbling around a
boundary does not flicker.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple, Sequence

import numpy as np

from edgeclf.errors import UsageError

UNCERTAIN = "uncertain"
SMOOTH_MODES = ("mean", "majority")


def top_k(probs: np.ndarray, labels: Sequence[str], k: int) -> list[tuple[str, float]]:
    """The k most probable labels with their probabilities, best first."""
    k = max(1, min(k, len(labels)))
    order = np.argsort(-probs, kind="stable")[:k]
    return [(labels[i], float(probs[i])) for i in order]


def answer(probs: np.ndarray, labels: Sequence[str], threshold: float) -> tuple[str, float]:
    """(label, score) of the top class, or ("uncertain", score) when its probability is below `threshold`."""
    i = int(np.argmax(probs))
    score = float(probs[i])
    return (labels[i] if score >= threshold else UNCERTAIN), score


@dataclass(frozen=True)
class SmoothConfig:
    """--smooth N frames, mean or majority, --threshold and --hysteresis."""

    window: int = 1
    mode: str = "mean"
    threshold: float = 0.0
    hysteresis: float = 0.1

    def __post_init__(self) -> None:
        if self.window < 1:
            raise UsageError(f"--smooth {self.window}: expected 1 (no smoothing) or more frames")
        if self.mode not in SMOOTH_MODES:
            raise UsageError(f"--smooth-mode {self.mode!r}: expected one of {', '.join(SMOOTH_MODES)}")
        if not 0.0 <= self.threshold <= 1.0:
            raise UsageError(f"--threshold {self.threshold}: expected a probability between 0 and 1")
        if not 0.0 <= self.hysteresis < 1.0:
            raise UsageError(f"--hysteresis {self.hysteresis}: expected a margin between 0 and 1")


class Decision(NamedTuple):
    label: str  # the stable label, or "uncertain"
    index: int  # its class index, -1 for uncertain
    smoothed: float  # smoothed score of the stable label (of the best class when uncertain)
    changed: bool  # the stable label differs from the previous frame's


class Smoother:
    """Moving average (or majority vote) over the last `window` frames, with a hysteresis on the label."""

    def __init__(self, labels: Sequence[str], config: SmoothConfig = SmoothConfig()):
        self.labels = tuple(labels)
        self.config = config
        n = len(self.labels)
        self._hist = np.zeros((config.window, n), np.float32)
        self._sum = np.zeros(n, np.float64)
        self.scores = np.zeros(n, np.float32)  # the smoothed scores after the last update
        self._filled = 0
        self._pos = 0
        self.current = -2  # -2: nothing decided yet; -1: uncertain

    def _push(self, probs: np.ndarray) -> None:
        row = self._hist[self._pos]
        self._sum -= row
        if self.config.mode == "majority":
            row[:] = 0.0
            row[int(np.argmax(probs))] = 1.0
        else:
            row[:] = probs
        self._sum += row
        self._pos = (self._pos + 1) % self.config.window
        self._filled = min(self._filled + 1, self.config.window)
        np.divide(self._sum, self._filled, out=self.scores, casting="unsafe")

    def update(self, probs: np.ndarray) -> Decision:
        self._push(probs)
        s, c = self.scores, self.config
        best = int(np.argmax(s))
        cur = self.current
        if cur >= 0:
            if s[cur] < c.threshold - c.hysteresis:  # the current class faded out
                new = best if best != cur and s[best] >= c.threshold else -1
            elif best != cur and s[best] >= c.threshold and s[best] > s[cur] + c.hysteresis:
                new = best
            else:
                new = cur
        else:
            new = best if s[best] >= c.threshold else -1
        changed = new != cur
        self.current = new
        label = self.labels[new] if new >= 0 else UNCERTAIN
        return Decision(label, new, float(s[new] if new >= 0 else s[best]), changed)
