"""The bench results and how they are shown: the machine header, a rich table, bench.csv, bench.md, a PNG.

matplotlib is imported only to draw the PNG, and only when it is installed: on a Pi the plot is skipped
with a note and everything else is written.
"""

from __future__ import annotations

import csv
import io
import os
import platform
import time
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime
from pathlib import Path
from typing import Any, Mapping, Sequence

from edgeclf.atomic import atomic_path, write_json, write_text


@dataclass(frozen=True)
class BenchRow:
    """One bundle on one runtime at one thread count. Times are medians over repeats; None = not measured."""

    variant: str
    size: int
    quant: str
    runtime: str
    runtime_version: str
    threads: int
    status: str
    size_kb: float
    load_ms: float | None
    accuracy: float | None
    agreement: float | None
    agreement_src: str  # "keras" (measured now), "manifest" (recorded by the converter) or ""
    p50_ms: float | None
    p95_ms: float | None
    e2e_p50_ms: float | None
    e2e_p95_ms: float | None
    e2e_ratio: float | None  # end-to-end per frame / bare invoke, both p50
    peak_rss_mb: float | None
    first_frame_s: float | None
    mmacs: float | None  # million multiply-accumulates per frame
    gmacs_per_s: float | None  # achieved, at the invoke p50
    spread_pct: float | None  # range of the per-repeat p50s / their median
    repeats: int
    frames: int
    n_eval: int
    bundle: str
    # The accuracy's 95 % interval over test subjects (`edgeclf.metrics.bootstrap_interval`); None = not measured
    acc_low: float | None = None
    acc_high: float | None = None
    acc_groups: int | None = None
    acc_enough: bool | None = None  # False: too few subjects for a meaningful figure (shown with a "?")


COLUMNS = tuple(f.name for f in fields(BenchRow))


@dataclass(frozen=True)
class BenchReport:
    target: str
    machine: Mapping[str, Any]
    rows: tuple[BenchRow, ...]
    notes: tuple[str, ...] = ()
    keras_accuracy: Mapping[int, float] = field(default_factory=dict)  # per input size

    def to_dict(self) -> dict[str, Any]:
        return {"target": self.target, "machine": dict(self.machine), "notes": list(self.notes),
                "keras_accuracy": {str(k): v for k, v in self.keras_accuracy.items()},
                "rows": [asdict(r) for r in self.rows]}


def cpu_model() -> str:
    """CPU model from /proc/cpuinfo (x86 `model name`, Arm `Model`/`Hardware`), else what platform says."""
    keys = ("model name", "Model", "Hardware", "cpu model")
    try:
        found = {}
        for line in Path("/proc/cpuinfo").read_text(errors="replace").splitlines():
            k, _, v = line.partition(":")
            if k.strip() in keys and v.strip():
                found.setdefault(k.strip(), v.strip())
        for k in keys:
            if k in found:
                return found[k]
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info(runtimes: Mapping[str, str]) -> dict[str, Any]:
    import cv2
    import numpy as np

    return {"date": datetime.now().astimezone().isoformat(timespec="seconds"), "cpu": cpu_model(),
            "cores": os.cpu_count(), "arch": platform.machine(), "os": platform.platform(terse=True),
            "python": platform.python_version(), "numpy": np.__version__, "opencv": cv2.__version__,
            "runtimes": dict(runtimes), "load_before": _loadavg(), "cpu_start": cpu_snapshot()}


def _loadavg() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def cpu_snapshot() -> tuple[float, float, float] | None:
    """(CPU seconds used by the whole machine, by this process and its waited-for children, wall clock)."""
    try:
        with open("/proc/stat", encoding="ascii") as fh:
            fields = [int(x) for x in fh.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    busy = sum(fields) - fields[3] - (fields[4] if len(fields) > 4 else 0)  # all but idle and iowait
    t = os.times()
    return busy / os.sysconf("SC_CLK_TCK"), t.user + t.system + t.children_user + t.children_system, time.monotonic()


def others_cores(start: tuple[float, float, float] | None) -> float | None:
    """Cores that *other* processes kept busy on average since `start`: the noise behind the figures."""
    end = cpu_snapshot()
    if start is None or end is None or end[2] <= start[2]:
        return None
    others = (end[0] - start[0]) - (end[1] - start[1])
    return round(max(0.0, others) / (end[2] - start[2]), 2)


def finish_machine(machine: Mapping[str, Any]) -> dict[str, Any]:
    """Add the load after the run, the cores other processes used meanwhile, and whether that was a lot
    (a quarter of a core or more)."""
    d = {k: v for k, v in machine.items() if k != "cpu_start"}
    others = others_cores(machine.get("cpu_start"))
    busy = others > 0.25 if others is not None else (d.get("load_before") or 0) > 0.5 * (d.get("cores") or 1)
    return {**d, "load_after": _loadavg(), "others_cores": others, "busy": busy}


def _fmt(v: Any, digits: int = 1) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def _num(v: float | None) -> str:
    """Three significant figures or so, without exponents: 0.0312, 4.56, 45.6, 456."""
    if v is None:
        return "—"
    a = abs(v)
    return f"{v:.0f}" if a >= 100 else f"{v:.1f}" if a >= 10 else f"{v:.2f}" if a >= 0.1 or a == 0 else f"{v:.3f}"


def _pct(v: float | None) -> str:
    return "—" if v is None else f"{100 * v:.1f}"


ACC_HEADER = "acc [95 % interval] (n subjects)"
FEW_SUBJECTS = "? = too few test subjects (or too few in a class) for a meaningful accuracy"


def acc_cell(r: BenchRow) -> str:
    """'0.969 [0.77, 1.00] (13)': the held-out accuracy, its interval over subjects, how many subjects."""
    if r.accuracy is None:
        return "—"
    if r.acc_low is None or r.acc_high is None:
        return f"{r.accuracy:.3f}"
    mark = "?" if r.acc_enough is False else ""
    return f"{r.accuracy:.3f}{mark} [{r.acc_low:.2f}, {r.acc_high:.2f}] ({r.acc_groups})"


TABLE = (
    # header, how to show a row
    ("variant", lambda r: r.variant),
    ("runtime", lambda r: r.runtime),
    ("thr", lambda r: str(r.threads)),
    ("size KB", lambda r: _num(r.size_kb)),
    ("load ms", lambda r: _num(r.load_ms)),
    (ACC_HEADER, acc_cell),
    ("agree %", lambda r: _pct(r.agreement) + ("*" if r.agreement_src == "manifest" else "")),
    ("p50 ms", lambda r: _num(r.p50_ms)),
    ("p95 ms", lambda r: _num(r.p95_ms)),
    ("p50 ±%", lambda r: "—" if r.spread_pct is None else f"{r.spread_pct / 2:.0f}"),
    ("frame ms", lambda r: _num(r.e2e_p50_ms)),
    ("frame/inv", lambda r: _fmt(r.e2e_ratio, 2)),
    ("RSS MB", lambda r: _num(r.peak_rss_mb)),
    ("MMAC", lambda r: _num(r.mmacs)),
    ("GMAC/s", lambda r: _num(r.gmacs_per_s)),
)


def header_lines(report: BenchReport) -> list[str]:
    m = report.machine
    rts = ", ".join(f"{k} {v}" for k, v in m.get("runtimes", {}).items())
    load = f"load average {m.get('load_before')} before, {m.get('load_after')} after"
    if m.get("others_cores") is not None:
        load = f"other processes kept {m['others_cores']:.2f} cores busy meanwhile ({load})"
    lines = [
        f"{m.get('date', '')} · {m.get('cpu', '?')} · {m.get('cores', '?')} cores · {m.get('arch', '')} · "
        f"Python {m.get('python', '')} · numpy {m.get('numpy', '')} · OpenCV {m.get('opencv', '')} · {rts}",
        load + (" — busy: timings are pessimistic" if m.get("busy") else " — quiet"),
    ]
    r0 = report.rows[0] if report.rows else None
    if r0 is not None:
        lines.append(f"medians of {r0.repeats} repeats × {r0.frames} frames after warm-up; p50/p95 = invoke only; "
                     "p50 ±% = half the range of the per-repeat p50s; frame = preprocess + invoke + postprocess; "
                     "RSS = peak of a process that only loads and runs the bundle")
    if report.keras_accuracy:
        lines.append("Keras model accuracy: " + ", ".join(f"{100 * a:.1f} % @{s}" for s, a in
                                                           sorted(report.keras_accuracy.items())))
    if any(r.acc_enough is False for r in report.rows):
        lines.append(FEW_SUBJECTS)
    if any(r.agreement_src == "manifest" for r in report.rows):
        lines.append("* agreement recorded by `edgeclf convert` (not measured here: no TensorFlow, no Keras model "
                     "or --no-keras)")
    return lines + list(report.notes)


def to_markdown(report: BenchReport) -> str:
    out = [f"### edgeclf bench: {report.target}", ""]
    out += [line + "  " for line in header_lines(report)]
    out += ["", "| " + " | ".join(h for h, _ in TABLE) + " |", "|" + "---|" * len(TABLE)]
    for r in report.rows:
        cells = [show(r) for _, show in TABLE]
        if r.status != "ok":
            cells = cells[:3] + [r.status] + [""] * (len(TABLE) - 4)
        out.append("| " + " | ".join(c.replace("|", "/") for c in cells) + " |")
    return "\n".join(out) + "\n"


def to_csv(rows: Sequence[BenchRow]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: ("" if v is None else v) for k, v in asdict(r).items()})
    return buf.getvalue()


def print_table(report: BenchReport, console: Any = None) -> None:
    from rich.console import Console
    from rich.table import Table

    import sys

    # Piped into a log, rich would squeeze 16 columns into 80 characters: give them room instead.
    console = console or Console(width=None if sys.stdout.isatty() else 200)
    t = Table(title=f"edgeclf bench: {report.target}", title_justify="left", caption_justify="left",
              caption="\n".join(header_lines(report)))
    for i, (h, _) in enumerate(TABLE):
        t.add_column(h, justify="left" if i < 2 else "right", no_wrap=i == 0)
    for r in report.rows:
        if r.status != "ok":
            t.add_row(r.variant, r.runtime, str(r.threads), f"[red]{r.status}[/red]")
            continue
        t.add_row(*[show(r) for _, show in TABLE])
    console.print(t)


def plot(report: BenchReport, path: Path) -> str | None:
    """Latency (all cores) vs accuracy, marker area ∝ file size. Returns a note when it cannot draw."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "plot skipped: matplotlib is not installed (pip install matplotlib)"
    top = {}
    for r in report.rows:
        if r.status == "ok" and r.accuracy is not None and r.p50_ms is not None:
            key = (r.variant, r.runtime)
            if key not in top or r.threads > top[key].threads:
                top[key] = r
    if not top:
        return "plot skipped: no variant has both a latency and a held-out accuracy"
    rows = list(top.values())
    biggest = max(r.size_kb for r in rows) or 1.0
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    for rt in sorted({r.runtime for r in rows}):
        sel = [r for r in rows if r.runtime == rt]
        ax.scatter([r.p50_ms for r in sel], [100 * r.accuracy for r in sel], label=rt, alpha=0.6,
                   s=[30 + 1200 * r.size_kb / biggest for r in sel])
        for r in sel:
            ax.annotate(r.variant, (r.p50_ms, 100 * r.accuracy), fontsize=7, xytext=(4, 4),
                        textcoords="offset points")
    xs = [r.p50_ms for r in rows]
    wide = min(xs) > 0 and max(xs) / min(xs) > 10
    if wide:
        ax.set_xscale("log")
    ax.set_xlabel(f"invoke latency p50, ms ({rows[0].threads} threads{', log scale' if wide else ''})")
    ax.set_ylabel("held-out top-1 accuracy, %")
    ax.set_title(f"{report.machine.get('cpu', '')}: latency vs accuracy (marker area ∝ file size)", fontsize=9)
    ax.grid(True, alpha=0.3)
    legend = ax.legend(fontsize=8)
    for handle in getattr(legend, "legend_handles", []):
        handle.set_sizes([40])
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return None


def write_outputs(report: BenchReport, out: Path, draw: bool = True) -> tuple[list[Path], list[str]]:
    """bench.csv, bench.md, bench.json and (when `draw`) bench.png under `out`; returns paths and notes."""
    out.mkdir(parents=True, exist_ok=True)
    notes = []
    written = [out / "bench.csv", out / "bench.md", out / "bench.json"]
    write_text(written[0], to_csv(report.rows))
    write_text(written[1], to_markdown(report))
    write_json(written[2], report.to_dict())
    if draw:
        note = plot(report, out / "bench.png")
        if note:
            notes.append(note)
        else:
            written.append(out / "bench.png")
    return written, notes
