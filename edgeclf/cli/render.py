"""Readable terminal output (rich) for manifests and tables."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.table import Table
from rich.text import Text

from ..bundle import Manifest
from ..safetext import printable


class _Rows:
    """Table rows whose values are plain text: a manifest's strings are neither rich markup nor terminal codes."""

    def __init__(self, table: Table):
        self.table = table

    def add_row(self, key: str, value: object) -> None:
        self.table.add_row(Text(printable(key)), Text(printable(value)))


def print_manifest(path: Path, m: Manifest, console: Console | None = None) -> None:
    console = console or Console()
    p = m.preprocess
    table = Table(title=Text(f"bundle {printable(path)}"), show_header=False, title_justify="left")
    table.add_column("key", style="bold")
    table.add_column("value")
    t = _Rows(table)
    t.add_row("labels", ", ".join(f"{i}: {label}" for i, label in enumerate(m.labels)))
    binary = (f" (sigmoid; 1 = {m.positive_label})" if m.binary_output == "sigmoid"
              else f" (two-class [1 - p, p]; p = P({m.positive_label}))")
    t.add_row("task", m.task + (binary if m.task == "binary" else " (softmax)"))
    t.add_row("input", f"{p.height}x{p.width}x{p.channels} {p.color}, {p.resize} resize, crop {p.crop}, "
                       f"x*{p.scale:.6g}+{p.offset:g}")
    for name, ts in (("input tensor", m.input), ("output tensor", m.output)):
        q = f" (scale {ts.scale:.6g}, zero point {ts.zero_point})" if ts.quantized else ""
        t.add_row(name, ts.dtype + q)
    t.add_row("model", f"model.tflite, {m.size_bytes / 1024:.1f} KB, sha256 {m.sha256}")
    if m.source.to_dict():
        t.add_row("source", ", ".join(f"{k}={v}" for k, v in m.source.to_dict().items()))
    if m.metrics.to_dict():
        t.add_row("metrics", ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                                       for k, v in m.metrics.to_dict().items() if k != "test")
                  + (f", test={m.metrics.test.text()}" if m.metrics.test else ""))
    c = m.calibration
    if c is not None:
        t.add_row("calibration", f"temperature {c.temperature:.4g} ({c.fitted_on or c.method}); ECE "
                                 f"{c.ece_before}→{c.ece_after} on validation"
                  + (f", {c.test_ece_before}→{c.test_ece_after} on test" if c.test_ece_before is not None else ""))
        if c.unknown is not None:
            u = c.unknown
            t.add_row("unknown", f"below {u.threshold:.4g} ({u.score}); validation {u.validation_unknown}, generated "
                                 f"non-class {u.generated_unknown}, test {u.test_unknown} below it")
        if c.feature_unknown is not None:
            d = c.feature_unknown
            t.add_row("unknown (feature distance)", f"above {d.threshold:.4g} of output {d.output!r}; validation "
                                                    f"{d.validation_unknown}, generated non-class {d.generated_unknown}, "
                                                    f"test {d.test_unknown} above it")
    for rt, r in m.runtimes.items():
        t.add_row(f"loads on {rt}", ("yes" if r.loads else "NO") + (f" ({r.why})" if r.why else ""))
    t.add_row("created", f"{m.created} by edgeclf {m.edgeclf_version}")
    console.print(table)
