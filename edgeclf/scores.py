"""Calibrated scores: logits recovered from a bundle's probabilities, temperature scaling, the "unknown" score.

One home for the arithmetic, used by `convert` (fitting), the edge (every frame) and `eval` (before and
after). numpy only. Probabilities are (N, n_classes) as the edge holds them: a binary model's sigmoid p
is the row [1 - p, p].

Why recover logits: the bundle ends in a sigmoid or softmax, and an int8 bundle's output is quantized in
steps of 1/256, so p = 0 or 1 happens; `clip` keeps those at a finite logit (half a quantization step for
quantized outputs, `clip_for`).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np


def clip_for(quantized: bool, scale: float) -> float:
    """How far from 0 and 1 probabilities are clipped: half an output step when quantized, else 1e-6."""
    return max(float(scale) / 2.0, 1e-6) if quantized else 1e-6


def logits(probs: np.ndarray, clip: float) -> np.ndarray:
    """Logits up to a per-row constant: binary [0, log(p/(1-p))], multiclass log p (both clipped)."""
    p = np.clip(np.asarray(probs, np.float64), clip, 1.0 - clip)
    if p.shape[-1] == 2:
        z = np.zeros_like(p)
        z[..., 1] = np.log(p[..., 1]) - np.log1p(-p[..., 1])
        return z
    return np.log(p)


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def calibrate(probs: np.ndarray, temperature: float, clip: float) -> np.ndarray:
    """Probabilities after temperature scaling: softmax(logits / T); for 2 classes sigmoid(logit(p) / T),
    computed as 1 / (1 + ((1 - p) / p) ** (1 / T)), the same value in fewer steps (it runs on every frame)."""
    p = np.clip(np.asarray(probs, np.float64), clip, 1.0 - clip)
    if p.shape[-1] != 2:
        return softmax(np.log(p) / temperature)
    out = np.empty_like(p)
    out[..., 1] = 1.0 / (1.0 + ((1.0 - p[..., 1]) / p[..., 1]) ** (1.0 / temperature))
    out[..., 0] = 1.0 - out[..., 1]
    return out


def calibrate_into(p: np.ndarray, out: np.ndarray, temperature: float, clip: float, work: np.ndarray) -> None:
    """`calibrate` of one row `p` written into `out` (float32): the same values bit for bit, without its
    temporary arrays (the edge calls it on every frame). Two classes in Python floats (float64, the same
    pow); more in place in `work` (float64, one per class)."""
    if len(p) == 2:
        x = min(max(float(p[1]), clip), 1.0 - clip)  # np.clip, nan stays nan
        try:
            y = 1.0 / (1.0 + ((1.0 - x) / x) ** (1.0 / temperature))
        except OverflowError:  # numpy's inf: 1 / (1 + inf)
            y = 0.0
        out[1] = y
        out[0] = 1.0 - y
        return
    np.copyto(work, p)
    np.clip(work, clip, 1.0 - clip, out=work)
    np.log(work, out=work)
    np.divide(work, temperature, out=work)
    np.subtract(work, work.max(), out=work)  # softmax
    np.exp(work, out=work)
    np.divide(work, work.sum(), out=work)
    np.copyto(out, work, casting="unsafe")


def smoothed_targets(y: np.ndarray, n_classes: int) -> np.ndarray:
    """One-hot labels with Laplace's rule of succession: n images support a confidence of at most
    1 - 1/(n + 2) in the right class (the rest shared by the others), never 1."""
    eps = 1.0 / (len(y) + 2)
    t = np.full((len(y), n_classes), eps / max(n_classes - 1, 1))
    t[np.arange(len(y)), y] = 1.0 - eps
    return t


def fit_temperature(probs: np.ndarray, y: Sequence[int], clip: float) -> float:
    """The temperature minimising the cross-entropy against `smoothed_targets` (a grid over log T, then
    refined). Plain log-likelihood has no minimum when every validation image is right with a margin: it
    keeps sharpening (T -> 0) and calls everything certain; the smoothed targets stop it where the data
    does."""
    z = logits(probs, clip)
    yy = np.asarray(y, np.int64)
    targets = smoothed_targets(yy, z.shape[1])

    def loss(log_t: float) -> float:
        q = np.clip(softmax(z / np.exp(log_t)), 1e-300, 1.0)
        return float(-np.mean(np.sum(targets * np.log(q), axis=1)))

    grid = np.linspace(np.log(0.05), np.log(20.0), 121)
    best = float(grid[int(np.argmin([loss(g) for g in grid]))])
    step = float(grid[1] - grid[0])
    fine = np.linspace(best - step, best + step, 41)
    return round(float(np.exp(fine[int(np.argmin([loss(g) for g in fine]))])), 4)


def top_score(probs: np.ndarray) -> np.ndarray:
    """The "unknown" score: the calibrated probability of the top class (binary: a band around 0.5), rounded
    to float32 as the edge holds it, so a threshold between two of these values splits the edge's alike."""
    return np.asarray(probs, np.float64).max(axis=-1).astype(np.float32).astype(np.float64)


def ece(probs: np.ndarray, y: Sequence[int]) -> float:
    """Expected calibration error of the top class (`edgeclf.metrics.reliability`)."""
    from .metrics import reliability  # desktop and eval only: the camera does not load it

    p = np.asarray(probs, np.float64)
    pred = p.argmax(axis=1)
    return reliability(p[np.arange(len(p)), pred], pred == np.asarray(y))[0]


def choose_unknown_threshold(known: np.ndarray, generated: np.ndarray, max_loss: float = 0.05) -> float:
    """The threshold on `top_score` that best separates known images from generated non-class ones.

    Maximises (share of generated images below it) - (share of known images below it), among thresholds
    that put at most `max_loss` of the known images below; ties go to the lower threshold (less recall lost).
    """
    k = np.sort(np.asarray(known, np.float64))
    g = np.asarray(generated, np.float64)
    # Thresholds half-way between observed scores: none sits on a score (an int8 output has few levels, and
    # the edge computes in float32), so the same images fall on the same side on the edge.
    values = np.unique(np.concatenate([k, g]))
    # (The lowest candidate is below every score: 0 for probabilities, the lowest score for negated distances.)
    candidates = np.concatenate([[min(0.0, float(values[0]))], (values[:-1] + values[1:]) / 2, values[-1:] + 1e-6])
    best_t, best_j = float(candidates[0]), -np.inf
    for t in candidates:
        lost = np.searchsorted(k, t, side="left") / max(len(k), 1)  # known scores strictly below t
        if lost > max_loss:
            break
        j = float(np.mean(g < t)) - lost if len(g) else -lost
        if j > best_j + 1e-12:
            best_t, best_j = float(t), j
    return best_t
