"""Held-out metrics and the plots of a run: accuracy/loss curves and confusion matrices."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from edgeclf.atomic import atomic_path
from edgeclf.metrics import confusion, decide, per_class
from edgeclf.plots import draw_confusion


def log_loss(probs: np.ndarray, y: np.ndarray, n_classes: int) -> float:
    eps = 1e-7
    if n_classes == 2:
        p = np.clip(probs.reshape(-1).astype(np.float64), eps, 1 - eps)
        return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))
    p = np.clip(probs[np.arange(len(y)), y].astype(np.float64), eps, 1.0)
    return float(-np.mean(np.log(p)))


def classification_metrics(probs: np.ndarray, y: Sequence[int], labels: Sequence[str]) -> dict[str, Any]:
    """Accuracy, log loss, per-class precision/recall and the confusion matrix (rows: truth)."""
    y = np.asarray(y, np.int64)
    n = len(labels)
    pred = decide(probs, n)
    cm = confusion(y, pred, n)
    return {"accuracy": round(float((pred == y).mean()), 4) if len(y) else None,
            "loss": round(log_loss(probs, y, n), 4) if len(y) else None,
            "n": int(len(y)), "per_class": per_class(cm, labels), "confusion": cm.tolist()}


def _save_fig(fig: Any, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")


def plot_curves(histories: Mapping[int, Sequence[Mapping[str, float]]], path: Path, title: str) -> None:
    """Accuracy and loss per epoch, train vs validation, one row per size (as the course's plots)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = list(histories)
    fig, axes = plt.subplots(len(sizes), 2, figsize=(10, 3.2 * len(sizes)), squeeze=False)
    for row, size in zip(axes, sizes):
        h = histories[size]
        ep = [r["epoch"] for r in h]
        for ax, key in zip(row, ("accuracy", "loss")):
            ax.plot(ep, [r.get(key) for r in h], "o-", label=f"train {key}", markersize=3)
            ax.plot(ep, [r.get(f"val_{key}") for r in h], "o-", label=f"validation {key}", markersize=3)
            ax.set_title(f"{size}x{size}: {key}")
            ax.set_xlabel("epoch")
            ax.grid(alpha=0.3)
            ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    _save_fig(fig, path)
    plt.close(fig)


def plot_confusion(metrics: Mapping[int, Mapping[str, Any]], labels: Sequence[str], path: Path) -> None:
    """One confusion matrix per size, counts in the cells (rows: true class)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = list(metrics)
    fig, axes = plt.subplots(1, len(sizes), figsize=(4.2 * len(sizes), 4), squeeze=False)
    for ax, size in zip(axes[0], sizes):
        side = "test" if "test" in metrics[size] else "validation"
        draw_confusion(ax, metrics[size]["confusion"], labels, f"{size}x{size}: {side} accuracy {metrics[size]['accuracy']}")
    fig.tight_layout()
    _save_fig(fig, path)
    plt.close(fig)
