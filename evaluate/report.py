"""What `edgeclf eval` writes: eval.json, predictions.csv, confusion.png and reliability.png."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from edgeclf.atomic import atomic_path, write_json, write_text

from .run import EvalReport


def summary_lines(r: EvalReport) -> list[str]:
    """The report as a person reads it in a terminal."""
    ev = r.evaluation
    t = ev.top1
    lines = [f"{r.kind} {r.target} on {r.data_dir} ({r.mode}, {t.n_images} {'frames' if r.mode != 'files' else 'images'})",
             f"top-1 accuracy {t.accuracy:.3f}  95 % interval [{t.low:.3f}, {t.high:.3f}] over {t.n_groups} "
             f"{'subjects (groups from file names)' if r.grouped else 'files (no groups in the file names)'}"]
    if not t.enough:
        lines.append(f"note: {t.note}; the figure says little about new subjects")
    lines.append(f"calibration: expected calibration error {ev.ece:.3f}, log loss {ev.log_loss:.3f}")
    c = r.calibration
    if c is not None:
        lines.append(f"  calibrated scores (temperature {c.temperature:.3f}, fitted by convert): ECE {c.ece_before:.3f} "
                     f"before, {c.ece_after:.3f} after")
        if c.unknown_threshold is not None:
            far = (f" or feature distance above {c.distance_threshold:.3f} ({100 * (c.distance_fraction or 0):.1f} % above "
                   "it)" if c.distance_threshold is not None else "")
            lines.append(f"  unknown below {c.unknown_threshold:.3f}{far}: {100 * (c.unknown_fraction or 0):.1f} % of "
                         f"these images; {100 * (c.correct_lost or 0):.1f} % of the correct answers lost to it")
    width = max(len(x) for x in ev.labels)
    lines.append(f"{'class':<{width}}  precision  recall  support")
    for name, m in ev.per_class.items():
        p = "-" if m["precision"] is None else f"{m['precision']:.3f}"
        rc = "-" if m["recall"] is None else f"{m['recall']:.3f}"
        lines.append(f"{name:<{width}}  {p:>9}  {rc:>6}  {m['support']:>7}")
    lines.append("confusion (rows: true, columns: predicted): " + json.dumps([list(x) for x in ev.confusion]))
    if r.worst:
        lines.append(f"most confident mistakes ({len(r.worst)}):")
        lines += [f"  {m.score:.3f} {m.predicted} <- {m.truth}: {m.file}" for m in r.worst]
    return lines


def write_outputs(r: EvalReport, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "eval.json", r.to_dict())
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["file", "truth", "predicted", "score"])
    labels = r.evaluation.labels
    w.writerows([(f, labels[t], labels[p], s) for f, t, p, s in r.predictions])
    write_text(out / "predictions.csv", buf.getvalue())
    written = [out / "eval.json", out / "predictions.csv"]
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return written  # on a Pi without matplotlib: the JSON holds the same numbers
    written += [_confusion_png(r, out / "confusion.png"), _reliability_png(r, out / "reliability.png")]
    return written


def _save(fig: Any, path: Path) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    return path


def _confusion_png(r: EvalReport, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from edgeclf.plots import draw_confusion

    labels = r.evaluation.labels
    fig, ax = plt.subplots(figsize=(1.2 + 0.6 * len(labels), 1.0 + 0.6 * len(labels)))
    t = r.evaluation.top1
    draw_confusion(ax, r.evaluation.confusion, labels,
                   f"top-1 {t.accuracy:.3f} [{t.low:.2f}, {t.high:.2f}], {t.n_groups} groups")
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)
    return path


def _reliability_png(r: EvalReport, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = r.evaluation.reliability
    c = r.calibration
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.plot([0, 1], [0, 1], "--", color="grey", label="perfectly calibrated")
    ax.bar([(b["low"] + b["high"]) / 2 for b in rows], [b["accuracy"] for b in rows], width=0.09, alpha=0.7,
           label="accuracy in bin" + (" (calibrated)" if c is not None else ""))
    if c is not None:  # the model's own scores, before the bundle's temperature
        before = c.reliability_before
        ax.plot([b["confidence"] for b in before], [b["accuracy"] for b in before], "s--", color="C3",
                label=f"before calibration (ECE {c.ece_before:.3f})")
    ax.plot([b["confidence"] for b in rows], [b["accuracy"] for b in rows], "o-", color="C1",
            label="calibrated" if c is not None else "mean confidence")
    ax.set_xlabel("confidence of the chosen class")
    ax.set_ylabel("accuracy")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_title(f"reliability (ECE {c.ece_before:.3f} -> {r.evaluation.ece:.3f})" if c is not None
                 else f"reliability (ECE {r.evaluation.ece:.3f})")
    ax.legend(loc="lower right", fontsize="small")
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)
    return path
