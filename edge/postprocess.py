"""From class probabilities to an answer: top-k, "unknown", per-class "uncertain" thresholds, smoothing.

Order of the rule, per frame (or per smoothed score vector): below the unknown threshold (the manifest's,
`--unknown`) the answer is "unknown"; else the top class when its score reaches its threshold
(`--threshold`, one for every class or LABEL=P per class); else "uncertain".

`Smoother` keeps the last N probability vectors (moving average) or top-1 votes (majority) in fixed
buffers and decides a *stable* label with hysteresis: the label changes only when another class leads the
current one by more than `hysteresis` in the smoothed scores (a tie keeps it), and a class is entered at
`threshold` but only left (to "uncertain") below `threshold - hysteresis`; likewise a held class is only
left for "unknown" below the unknown threshold minus `hysteresis`. So a score wobbling around a boundary
does not flicker.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple, Sequence

import numpy as np

from edgeclf.errors import UsageError

if TYPE_CHECKING:
    from edgeclf.calibration import Calibration

UNCERTAIN = "uncertain"
UNKNOWN = "unknown"
UNCERTAIN_INDEX, UNKNOWN_INDEX = -1, -3  # Decision.index of the two non-class answers (-2: nothing yet)
SMOOTH_MODES = ("mean", "majority")


def top_k(probs: np.ndarray, labels: Sequence[str], k: int) -> list[tuple[str, float]]:
    """The k most probable labels with their probabilities, best first."""
    k = max(1, min(k, len(labels)))
    if len(labels) <= 64:  # a few labels (each `change` event): Python's stable sort, the same order, no arrays
        ps = probs.tolist()
        if all(p == p for p in ps):  # no nan (numpy sorts nan last; Python's sort would not)
            return [(labels[i], ps[i]) for i in sorted(range(len(ps)), key=lambda i: -ps[i])[:k]]
    order = np.argsort(-probs, kind="stable")[:k]
    return [(labels[i], float(probs[i])) for i in order]


MARGIN, FEATURE_DISTANCE = "margin", "feature-distance"  # which rule said "unknown" (`unknown_by`)


def unknown_by(score: float, unknown: float | None, distance: float = float("nan"),
               distance_above: float | None = None) -> str | None:
    """Which rule calls this answer unknown: "margin" (top score below `unknown`), "feature-distance"
    (the model's feature distance above `distance_above`), "margin+feature-distance", or None."""
    by = [MARGIN] if unknown is not None and score < unknown else []
    if distance_above is not None and distance > distance_above:  # nan (no such output) is never above
        by.append(FEATURE_DISTANCE)
    return "+".join(by) or None


def answer(probs: np.ndarray, labels: Sequence[str], threshold: float | np.ndarray,
           unknown: float | None = None, distance: float = float("nan"),
           distance_above: float | None = None) -> tuple[str, float]:
    """(label, score) of the top class; ("unknown", score) below `unknown` or with the feature `distance`
    above `distance_above`; ("uncertain", score) below the top class's threshold (`threshold`: one for all,
    or one per class)."""
    i = int(np.argmax(probs))
    score = float(probs[i])
    if unknown_by(score, unknown, distance, distance_above) is not None:
        return UNKNOWN, score
    t = float(threshold) if np.ndim(threshold) == 0 else float(threshold[i])  # type: ignore[index]
    return (labels[i] if score >= t else UNCERTAIN), score


def probability(value: object, what: str) -> float:
    """`value` (a number, or its text from a flag or a config file) as a probability, or a UsageError naming
    `what` ("--threshold", "--threshold humans=")."""
    try:
        v = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        v = float("nan")
    if isinstance(value, bool) or not 0.0 <= v <= 1.0:
        shown = f"{what}{value}" if what.endswith("=") else f"{what} {value}"
        raise UsageError(f"{shown}: expected a probability between 0 and 1, e.g. 0.8")
    return v


@dataclass(frozen=True)
class SmoothConfig:
    """--smooth N frames, mean or majority, --threshold (for all classes and per class), --hysteresis and
    --unknown (None: the manifest's threshold when it has one; "off"; "auto": the manifest's, required; or
    a probability)."""

    window: int = 1
    mode: str = "mean"
    threshold: float = 0.0
    hysteresis: float = 0.1
    class_thresholds: tuple[tuple[str, float], ...] = ()  # (label, threshold), checked against the bundle's labels
    unknown: str | float | None = None

    def __post_init__(self) -> None:
        if self.window < 1:
            raise UsageError(f"--smooth {self.window}: expected 1 (no smoothing) or more frames")
        if self.mode not in SMOOTH_MODES:
            raise UsageError(f"--smooth-mode {self.mode!r}: expected one of {', '.join(SMOOTH_MODES)}")
        if not 0.0 <= self.threshold <= 1.0:
            raise UsageError(f"--threshold {self.threshold}: expected a probability between 0 and 1")
        if not 0.0 <= self.hysteresis < 1.0:
            raise UsageError(f"--hysteresis {self.hysteresis}: expected a margin between 0 and 1")
        for label, t in self.class_thresholds:
            probability(t, f"--threshold {label}=")
        if self.unknown is not None and self.unknown not in ("off", "auto"):
            probability(self.unknown, "--unknown")

    def thresholds(self, labels: Sequence[str]) -> np.ndarray:
        """One threshold per label: the per-class ones where given, `threshold` elsewhere."""
        out = np.full(len(labels), self.threshold, np.float32)
        for label, t in self.class_thresholds:
            if label not in labels:
                raise UsageError(f"threshold for {label!r}: not a label of this bundle; its labels are "
                                 f"{', '.join(labels)}")
            out[list(labels).index(label)] = t
        return out

    def unknown_threshold(self, calibration: "Calibration | None") -> float | None:
        """The "unknown" threshold in use (None: off), from --unknown and the manifest's calibration."""
        rule = calibration.unknown if calibration is not None else None
        if self.unknown is None:
            return rule.threshold if rule is not None else None
        if self.unknown == "off":
            return None
        if self.unknown == "auto":
            if rule is None:
                raise UsageError("--unknown auto: this bundle has no unknown threshold (converted before edgeclf "
                                 "fitted one); re-convert it with `edgeclf convert`, or give one: --unknown 0.8")
            return rule.threshold
        return float(self.unknown)

    def distance_threshold(self, calibration: "Calibration | None") -> float | None:
        """The feature-distance threshold in use (None: off, or the bundle has none): the bundle's unless
        --unknown off; --unknown P replaces the margin's threshold only."""
        rule = calibration.feature_unknown if calibration is not None else None
        return None if rule is None or self.unknown == "off" else rule.threshold


class Decision(NamedTuple):
    label: str  # the stable label, "uncertain" or "unknown"
    index: int  # its class index, -1 for uncertain, -3 for unknown
    smoothed: float  # smoothed score of the stable label (of the best class when uncertain)
    changed: bool  # the stable label differs from the previous frame's
    unknown_by: str | None = None  # when unknown: "margin", "feature-distance" or both (`unknown_by`)


class Smoother:
    """Moving average (or majority vote) over the last `window` frames, with a hysteresis on the label."""

    def __init__(self, labels: Sequence[str], config: SmoothConfig = SmoothConfig(),
                 calibration: "Calibration | None" = None):
        self.labels = tuple(labels)
        self.config = config
        self.thresholds = config.thresholds(self.labels)  # raises on a label the bundle does not have
        self.unknown = config.unknown_threshold(calibration)
        self.distance_above = config.distance_threshold(calibration)
        self._dist = [0.0] * config.window  # the feature distances of the window, and their running sum
        self._dist_sum = 0.0
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

    def update(self, probs: np.ndarray, distance: float = float("nan")) -> Decision:
        """The stable decision after this frame's probabilities (and feature distance, when the model has one)."""
        far = False
        if self.distance_above is not None:  # the window's mean distance, from a running sum (_push moves _pos)
            self._dist_sum += distance - self._dist[self._pos]
            self._dist[self._pos] = distance
        self._push(probs)
        s, h, thr = self.scores, self.config.hysteresis, self.thresholds
        best = int(np.argmax(s))
        cur = self.current
        if self.distance_above is not None:
            far = self._dist_sum / self._filled > self.distance_above
        unsure = self.unknown is not None and s[best] < self.unknown - (h if cur >= 0 else 0.0)
        by = None
        if unsure or far:
            new = UNKNOWN_INDEX
            by = f"{MARGIN}+{FEATURE_DISTANCE}" if unsure and far else MARGIN if unsure else FEATURE_DISTANCE
        elif cur >= 0:
            if s[cur] < thr[cur] - h:  # the current class faded out
                new = best if best != cur and s[best] >= thr[best] else UNCERTAIN_INDEX
            elif best != cur and s[best] >= thr[best] and s[best] > s[cur] + h:
                new = best
            else:
                new = cur
        else:
            new = best if s[best] >= thr[best] else UNCERTAIN_INDEX
        changed = new != cur
        self.current = new
        label = self.labels[new] if new >= 0 else UNKNOWN if new == UNKNOWN_INDEX else UNCERTAIN
        return Decision(label, new, float(s[new] if new >= 0 else s[best]), changed,
                        by if new == UNKNOWN_INDEX else None)
