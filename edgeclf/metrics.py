"""Accuracy a user can trust: top-1 with a bootstrap interval over subjects, per-class figures, calibration.

Shared by `train` (the test figure), `convert` (each variant's figure), `bench` and `eval`. numpy only, so
`edgeclf eval BUNDLE` runs on a Pi too.

Why groups: several images of one subject (renders of one horse, photos of one shirt) are not independent
trials. An interval that resamples images pretends 200 images are 200 subjects and comes out far too
narrow; resampling whole subjects (the cluster bootstrap) gives the interval for *new subjects*, which is
what a user meets. With no groups in the file names, every file is its own group.

Why a floor under the bootstrap: with few clusters the percentile bootstrap under-covers, and when every
test subject is right every replicate is right too, so it prints 1.000 [1.00, 1.00]: an interval that cannot
contain the 0.97 a user then measures on new subjects. The printed interval is therefore the union of the
bootstrap percentile interval and a Wilson score interval at an effective sample size over subjects (in the
manner of Korn & Graubard's design-effect n): n_eff = p(1-p) / var(bootstrap replicates), clamped to
[subjects, images], when 0 < p < 1 and the replicates vary; n_eff = the number of subjects (each subject one
trial) when p is 0 or 1 or they do not. So 13 subjects, all right, print 1.000 [0.77, 1.00]. On simulated
clustered data (15 subjects of 10-20 images, true p 0.95, spread between subjects) the union contains the
truth in 92 % of 300 runs, the percentile interval alone in 87 % (tests/test_metrics.py).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from statistics import NormalDist
from typing import Any, Mapping, Sequence

import numpy as np

from .contracts import Interval  # noqa: F401  (the test figure's one home; imported from here by callers)

N_BOOT = 2000
LEVEL = 0.95
# Fewer test subjects than this (or fewer than MIN_GROUPS_PER_CLASS in some class) give an interval so wide,
# or so dependent on which subjects were drawn, that a single figure misleads: the tool says so instead.
MIN_GROUPS = 10
MIN_GROUPS_PER_CLASS = 2
RELIABILITY_BINS = 10


def bootstrap_interval(correct: Sequence[bool] | np.ndarray, groups: Sequence[str], labels: Sequence[int] | None = None,
                       n_boot: int = N_BOOT, level: float = LEVEL, seed: int = 0) -> Interval:
    """Accuracy and its interval: the percentile interval from resampling groups with replacement (stratified
    by class when `labels` are given, so every replicate keeps each class's share of groups), widened to
    cover the Wilson interval at the effective number of trials (`effective_n`; see the module docstring)."""
    c = np.asarray(correct, dtype=np.float64).reshape(-1)
    if len(c) != len(groups):
        raise ValueError(f"{len(c)} results but {len(groups)} group names")
    if len(c) == 0:
        return Interval(float("nan"), float("nan"), float("nan"), 0, 0, False, "no test images")
    keys, inv = np.unique(np.asarray(groups, dtype=object).astype(str), return_inverse=True)
    hits = np.bincount(inv, weights=c, minlength=len(keys))
    counts = np.bincount(inv, minlength=len(keys)).astype(np.float64)
    strata: list[np.ndarray]
    per_class_groups: dict[int, int] = {}
    if labels is not None:
        lab = np.asarray(labels).reshape(-1)
        group_label = np.zeros(len(keys), dtype=np.int64)
        group_label[inv] = lab  # a group belongs to one class (a subject is one thing)
        strata = [np.flatnonzero(group_label == k) for k in np.unique(group_label)]
        per_class_groups = {int(k): int((group_label == k).sum()) for k in np.unique(group_label)}
    else:
        strata = [np.arange(len(keys))]
    rng = np.random.default_rng(seed)
    picks = np.concatenate([s[rng.integers(0, len(s), size=(n_boot, len(s)))] for s in strata], axis=1)
    accs = hits[picks].sum(axis=1) / counts[picks].sum(axis=1)
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(accs, [alpha, 1.0 - alpha])
    acc = float(c.mean())
    w_low, w_high = wilson(acc, effective_n(acc, float(accs.var()), len(keys), len(c)), level)
    low, high = min(float(low), w_low), max(float(high), w_high)
    note = ""
    if len(keys) < MIN_GROUPS:
        note = f"only {len(keys)} test groups; at least {MIN_GROUPS} are needed for a meaningful figure"
    elif per_class_groups and min(per_class_groups.values()) < MIN_GROUPS_PER_CLASS:
        note = (f"a class has only {min(per_class_groups.values())} test group(s); at least "
                f"{MIN_GROUPS_PER_CLASS} per class are needed")
    return Interval(round(acc, 4), round(float(low), 4), round(float(high), 4), int(len(c)), int(len(keys)),
                    not note, note)


def effective_n(p: float, boot_var: float, n_groups: int, n_images: int) -> float:
    """Trials the accuracy is worth: p(1-p) over the bootstrap variance, within [groups, images]; the number
    of groups when that ratio says nothing (p is 0 or 1, or every replicate was the same)."""
    if 0.0 < p < 1.0 and boot_var > 0.0:
        return float(min(max(p * (1.0 - p) / boot_var, n_groups), max(n_images, n_groups)))
    return float(n_groups)


def wilson(p: float, n: float, level: float = LEVEL) -> tuple[float, float]:
    """Wilson score interval of a proportion p over n trials (n may be fractional)."""
    z = NormalDist().inv_cdf(0.5 + level / 2.0)
    z2n = z * z / n
    centre = (p + z2n / 2.0) / (1.0 + z2n)
    half = z / (1.0 + z2n) * np.sqrt(p * (1.0 - p) / n + z2n / (4.0 * n))
    return max(0.0, float(centre - half)), min(1.0, float(centre + half))


def decide(probs: np.ndarray, n_classes: int | None = None) -> np.ndarray:
    """Class index per row of model outputs, the one rule every part uses: a single sigmoid >= 0.5 is the
    second label (binary), otherwise the arg-max. `n_classes` is accepted for clarity; the shape decides."""
    p = np.asarray(probs, dtype=np.float64)
    p = p.reshape(len(p), -1)
    if p.shape[1] == 1:
        return (p[:, 0] >= 0.5).astype(np.int64)
    return p.argmax(axis=1).astype(np.int64)


def class_probs(probs: np.ndarray, n_classes: int) -> np.ndarray:
    """(N, n_classes) probabilities; a single sigmoid p becomes [1 - p, p]."""
    p = np.asarray(probs, dtype=np.float64).reshape(len(probs), -1)
    if n_classes == 2 and p.shape[1] == 1:
        return np.concatenate([1.0 - p, p], axis=1)
    return p


def confusion(y_true: Sequence[int], y_pred: Sequence[int], n_classes: int) -> np.ndarray:
    cm = np.zeros((n_classes, n_classes), np.int64)
    np.add.at(cm, (np.asarray(y_true, np.int64), np.asarray(y_pred, np.int64)), 1)
    return cm


def per_class(cm: np.ndarray, labels: Sequence[str]) -> dict[str, dict[str, Any]]:
    out = {}
    for i, name in enumerate(labels):
        tp, col, row = cm[i, i], cm[:, i].sum(), cm[i, :].sum()
        out[name] = {"precision": round(float(tp / col), 4) if col else None,
                     "recall": round(float(tp / row), 4) if row else None, "support": int(row)}
    return out


def reliability(confidence: np.ndarray, correct: np.ndarray, bins: int = RELIABILITY_BINS) -> tuple[float, list[dict[str, float]]]:
    """Expected calibration error and the reliability diagram's bins (confidence of the chosen class)."""
    conf = np.asarray(confidence, np.float64)
    ok = np.asarray(correct, np.float64)
    edges = np.linspace(0.0, 1.0, bins + 1)
    rows, ece = [], 0.0
    for k in range(bins):
        m = (conf > edges[k]) & (conf <= edges[k + 1]) if k else (conf >= edges[0]) & (conf <= edges[1])
        if not m.any():
            continue
        acc, cf, n = float(ok[m].mean()), float(conf[m].mean()), int(m.sum())
        ece += n / len(conf) * abs(acc - cf)
        rows.append({"low": float(edges[k]), "high": float(edges[k + 1]), "confidence": round(cf, 4),
                     "accuracy": round(acc, 4), "n": n})
    return round(float(ece), 4), rows


@dataclass(frozen=True)
class Evaluation:
    """Everything `eval` reports on one test set."""

    labels: tuple[str, ...]
    top1: Interval
    per_class: Mapping[str, Mapping[str, Any]]
    confusion: tuple[tuple[int, ...], ...]
    ece: float
    reliability: tuple[Mapping[str, float], ...]
    log_loss: float

    def to_dict(self) -> dict[str, Any]:
        return {"labels": list(self.labels), "top1": self.top1.to_dict(), "per_class": dict(self.per_class),
                "confusion": [list(r) for r in self.confusion], "ece": self.ece,
                "reliability": [dict(r) for r in self.reliability], "log_loss": self.log_loss}


def evaluate(probs: np.ndarray, y_true: Sequence[int], groups: Sequence[str], labels: Sequence[str],
             seed: int = 0) -> Evaluation:
    """Top-1 with its group interval, per-class precision/recall, confusion (rows: truth), calibration."""
    n = len(labels)
    y = np.asarray(y_true, np.int64)
    p = class_probs(probs, n)
    pred = decide(probs, n)
    correct = pred == y
    cm = confusion(y, pred, n)
    ece, bins = reliability(p[np.arange(len(p)), pred], correct)
    ll = float(-np.mean(np.log(np.clip(p[np.arange(len(p)), y], 1e-7, 1.0)))) if len(y) else float("nan")
    return Evaluation(tuple(labels), bootstrap_interval(correct, groups, y, seed=seed), per_class(cm, labels),
                      tuple(tuple(int(v) for v in r) for r in cm), ece, tuple(bins), round(ll, 4))
