"""Quantization: what int8 (and float16, dynamic-range) costs and saves against float32, per input size.

File size, held-out top-1 accuracy through the edge pipeline (edgeclf.imageio + the edge Preprocessor +
the interpreter), and agreement with the Keras model's decisions, all measured now by `edgeclf bench`'s
library on the run's held-out split. The baseline is the float32 bundle of the same size, same run.

Goals (issue 6): int8 size <= 0.26x float32; int8 accuracy within 1 pp of float32; agreement >= 98 %.

    .venv/bin/python benchmarks/quantization.py [--run RUN]
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import _common as c

SIZE_GOAL = 0.26
DROP_GOAL_PP = 1.0
AGREE_GOAL = 0.98


def main(argv: list[str] | None = None) -> int:
    p = c.parser(__doc__)
    c.add_run_args(p)
    p.add_argument("--max-images", type=int, default=0, help="cap on held-out images (default: all)")
    a = p.parse_args(argv)
    c.quiet_tensorflow()

    from edgeclf.bench.run import BenchConfig, run_bench

    run = c.ensure_run(a.run, a.data)
    m = c.print_machine(f"quantization: {run}")
    cfg = BenchConfig(repeats=1, warmup=0, frames=1, threads=(m["cores"] or 1,), runtimes=("ai-edge-litert",),
                      rss=False, plot=False, max_images=a.max_images, data=Path(a.data) if a.data else None)
    with tempfile.TemporaryDirectory() as tmp:
        report, _ = run_bench(run, cfg, Path(tmp))
    for note in report.notes:
        print(note)
    by = {(r.size, r.quant): r for r in report.rows if r.status == "ok"}
    rows, out = [], {}
    for size in sorted({s for s, _ in by}, reverse=True):
        base = by.get((size, "float32"))
        if base is None:
            print(f"@{size}: no float32 bundle to compare with; convert with --quantize float32")
            continue
        for quant in ("float16", "dynamic", "int8"):
            r = by.get((size, quant))
            if r is None:
                continue
            ratio = r.size_kb / base.size_kb
            drop = None if r.accuracy is None or base.accuracy is None else 100 * (r.accuracy - base.accuracy)
            goals = ""
            if quant == "int8":
                ok = [ratio <= SIZE_GOAL, drop is not None and abs(drop) <= DROP_GOAL_PP,
                      r.agreement is not None and r.agreement >= AGREE_GOAL]
                goals = " / ".join(c.goal(x) for x in ok)
            out[f"{size}-{quant}"] = {"size_kb": r.size_kb, "float32_kb": base.size_kb, "size_ratio": ratio,
                                      "accuracy": r.accuracy, "float32_accuracy": base.accuracy, "delta_pp": drop,
                                      "agreement": r.agreement, "agreement_src": r.agreement_src}
            rows.append([f"@{size} {quant}", base.size_kb, r.size_kb, f"{ratio:.3f}×",
                         _pct(base.accuracy), _pct(r.accuracy), None if drop is None else f"{drop:+.1f}",
                         _pct(r.agreement) + ("*" if r.agreement_src == "manifest" else ""), goals])
    n_eval = max((r.n_eval for r in report.rows), default=0)
    c.table(["variant", "float32 KB", "KB", "size / float32", "float32 acc %", "acc %", "Δ pp", "agree %",
             f"int8 goals: ≤ {SIZE_GOAL}× / ±{DROP_GOAL_PP:g} pp / ≥ {100 * AGREE_GOAL:.0f} %"], rows,
            title=f"quantized vs float32, same run, {n_eval} held-out images (agreement = same decision as the "
                  "Keras model" + ("; * = recorded by the converter" if any("*" in str(r[7]) for r in rows) else "")
                  + ")")
    if report.keras_accuracy:
        print("Keras accuracy: " + ", ".join(f"@{s} {100 * v:.1f} %" for s, v in sorted(report.keras_accuracy.items())))
    m = c.finish(m)
    c.save(a.json, {"machine": m, "run": str(run), "n_eval": n_eval, "variants": out,
                    "keras_accuracy": dict(report.keras_accuracy)})
    return 0


def _pct(v: float | None) -> str:
    return "—" if v is None else f"{100 * v:.1f}"


if __name__ == "__main__":
    sys.exit(main())
