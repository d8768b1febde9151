"""The comparison plot: accuracy and file size per variant, side by side, the Keras model as a line."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from edgeclf.atomic import atomic_path

from .report import REJECTED, VariantResult

_COLORS = {"float32": "tab:blue", "float16": "tab:green", "dynamic": "tab:orange", "int8": "tab:red"}


def plot_variants(results: Sequence[VariantResult], path: Path, title: str = "") -> Path:
    """Write a PNG (matplotlib, Agg): grouped bars per input size; rejected variants hatched."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    sizes = list(dict.fromkeys(r.size for r in results))
    labels = list(dict.fromkeys(r.kind.label for r in results))
    width = 0.8 / max(1, len(labels))
    fig = Figure(figsize=(9, 4), dpi=110)
    ax_acc, ax_kb = fig.subplots(1, 2)
    for j, label in enumerate(labels):
        for i, size in enumerate(sizes):
            r = next((r for r in results if r.size == size and r.kind.label == label), None)
            if r is None:
                continue
            x = i + (j - (len(labels) - 1) / 2) * width
            style = dict(width=width, color=_COLORS.get(r.kind.name, "gray"), edgecolor="black",
                         hatch="//" if r.status == REJECTED else None, label=label if i == 0 else None)
            ax_acc.bar(x, 100 * r.metrics.accuracy, **style)
            ax_kb.bar(x, r.size_bytes / 1024, **style)
            ax_acc.annotate(f"{r.metrics.delta_pp:+.1f}", (x, 100 * r.metrics.accuracy), ha="center",
                            textcoords="offset points", xytext=(0, 2), fontsize=6)
    for i, size in enumerate(sizes):
        keras = 100 * next(r for r in results if r.size == size).metrics.keras_accuracy
        ax_acc.hlines(keras, i - 0.45, i + 0.45, colors="black", linestyles="--", lw=1,
                      label="Keras model" if i == 0 else None)
    lo = min(100 * min(r.metrics.accuracy, r.metrics.keras_accuracy) for r in results)
    ax_acc.set_ylim(max(0.0, lo - 10), 100.5)
    ax_acc.set_ylabel("held-out top-1 accuracy (%)  [labels: Δ pp vs Keras]")
    ax_kb.set_ylabel("model file size (KB)")
    for ax in (ax_acc, ax_kb):
        ax.set_xticks(range(len(sizes)), [f"{s}x{s}" for s in sizes])
        ax.set_xlabel("input size")
        ax.grid(True, axis="y", alpha=0.3)
    handles, names = ax_acc.get_legend_handles_labels()
    fig.legend(handles, names, fontsize=7, loc="lower center", ncol=len(names))
    fig.suptitle(title or "edgeclf convert: variants vs the Keras model", fontsize=10)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    return path
