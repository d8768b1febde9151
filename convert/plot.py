"""The comparison plot: file size against held-out accuracy, one point per variant, Keras as a line."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from edgeclf.atomic import atomic_path

from .report import REJECTED, VariantResult

_COLORS = {"float32": "tab:blue", "float16": "tab:green", "dynamic": "tab:orange", "int8": "tab:red"}
_MARKERS = ("o", "s", "^", "D", "v")


def plot_variants(results: Sequence[VariantResult], path: Path, title: str = "") -> Path:
    """Write a PNG (matplotlib, Agg backend) of size (KB, log scale) vs accuracy; rejected ones crossed."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4.5), dpi=110)
    ax = fig.add_subplot()
    sizes = sorted({r.size for r in results}, reverse=True)
    for i, s in enumerate(sizes):
        marker = _MARKERS[i % len(_MARKERS)]
        group = [r for r in results if r.size == s]
        keras = 100 * group[0].metrics.keras_accuracy
        ax.axhline(keras, color="gray", lw=0.8, ls="--" if i == 0 else ":", label=f"Keras @{s}: {keras:.1f}%")
        for r in group:
            x, y = r.size_bytes / 1024, 100 * r.metrics.accuracy
            ax.scatter([x], [y], marker=marker, s=60, color=_COLORS.get(r.kind.name, "black"),
                       edgecolors="black" if r.status != REJECTED else "none", zorder=3)
            if r.status == REJECTED:
                ax.scatter([x], [y], marker="x", s=120, color="black", zorder=4)
            ax.annotate(r.name, (x, y), textcoords="offset points", xytext=(5, 4), fontsize=7)
    for kind, color in _COLORS.items():
        if any(r.kind.name == kind for r in results):
            ax.scatter([], [], color=color, label=kind)
    ax.set_xscale("log")
    ax.set_xlabel("model file size (KB, log scale)")
    ax.set_ylabel("held-out top-1 accuracy (%)")
    ax.set_title(title or "edgeclf convert: variants vs the Keras model", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    return path
