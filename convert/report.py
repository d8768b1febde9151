"""What a conversion produced: one result per variant, the summary table, variants.json, runtime advice."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping, Sequence

from edgeclf.atomic import write_json
from edgeclf.bundle import TensorSpec
from edgeclf.contracts import RuntimeVerdict
from edgeclf.tflite_ops import RUNTIME_214

from .quantize import QuantizationKind
from .verify import LITERT, Metrics

OK, REJECTED, ALLOWED = "ok", "rejected", "allowed"
# Which variant to suggest on tflite-runtime 2.14, best first: smallest that keeps accuracy.
_PREFERENCE = ("int8", "float16", "float32", "dynamic")


@dataclass(frozen=True)
class VariantResult:
    """One (input size x quantization) variant: what it measured, where it went, whether it passed."""

    size: int
    kind: QuantizationKind
    size_bytes: int
    metrics: Metrics
    runtimes: Mapping[str, RuntimeVerdict]
    status: str  # ok | rejected (drop > max_drop; not written) | allowed (drop > max_drop, kept by --allow-drop)
    input: TensorSpec = field(default_factory=TensorSpec)
    output: TensorSpec = field(default_factory=TensorSpec)
    path: Path | None = None  # the bundle folder, None when not written
    sha256: str = ""
    test: Mapping[str, Any] = field(default_factory=dict)  # edgeclf.metrics.Interval on the test side, if any

    @property
    def name(self) -> str:
        return variant_name(self.size, self.kind)

    @property
    def rejected(self) -> bool:
        return self.status == REJECTED

    def loads_on(self, runtime: str) -> bool | None:
        v = self.runtimes.get(runtime)
        return None if v is None else v.loads

    def to_dict(self) -> dict[str, Any]:
        return {
            "variant": self.name, "input_size": self.size, "quantization": self.kind.name,
            "io_dtype": self.kind.io_dtype, "size_bytes": self.size_bytes, "size_kb": round(self.size_bytes / 1024, 1),
            **self.metrics.to_dict(),
            **({"test": dict(self.test)} if self.test else {}),
            "loads": {rt: r.loads for rt, r in self.runtimes.items()},
            "runtimes": {rt: r.to_dict() for rt, r in self.runtimes.items()},
            "input": {"dtype": self.input.dtype, "scale": self.input.scale, "zero_point": self.input.zero_point},
            "output": {"dtype": self.output.dtype, "scale": self.output.scale, "zero_point": self.output.zero_point},
            "status": self.status, "bundle": str(self.path) if self.path else None, "sha256": self.sha256,
        }


def variant_name(size: int, kind: QuantizationKind) -> str:
    """The bundle folder name, `<size>-<quant>` (int8 with int8/float32 input/output says so)."""
    return f"{size}-{kind.label}"


def judge(metrics: Metrics, max_drop: float, allow_drop: bool) -> str:
    """ok when the variant loses at most `max_drop` percentage points of accuracy against Keras."""
    if -metrics.delta_pp <= max_drop + 1e-9:
        return OK
    return ALLOWED if allow_drop else REJECTED


def write_variants_json(path: Path, results: Sequence[VariantResult], run: Path, max_drop: float) -> None:
    keras = {str(r.size): r.metrics.keras_accuracy for r in results}
    write_json(path, {
        "run": str(run), "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "max_drop_pp": max_drop, "keras_accuracy": keras, "variants": [r.to_dict() for r in results],
    })


def _loads(v: bool | None) -> str:
    return "?" if v is None else ("yes" if v else "NO")


def summary_rows(results: Sequence[VariantResult]) -> list[tuple[str, ...]]:
    """variant, size KB, accuracy, delta vs Keras, agreement, loads on ai-edge-litert / tflite-runtime 2.14, status."""
    return [(r.name, f"{r.size_bytes / 1024:.1f}", f"{100 * r.metrics.accuracy:.2f}%", f"{r.metrics.delta_pp:+.2f}",
             f"{100 * r.metrics.agreement:.2f}%", _loads(r.loads_on(LITERT)), _loads(r.loads_on(RUNTIME_214)),
             r.status if r.status != ALLOWED else "over max-drop (kept)") for r in results]


SUMMARY_HEADER = ("variant", "size KB", "accuracy", "Δ pp", "agreement", "litert", "tflite 2.14", "status")
SUMMARY_CAPTION = ("Δ pp: accuracy minus the Keras model's, percentage points; agreement: same decision as Keras; "
                   "loads on litert = ai-edge-litert (run here), tflite 2.14 = tflite-runtime 2.14")


def summary_table(results: Sequence[VariantResult], title: str = "") -> Any:
    """A rich Table of `summary_rows` (built here, printed by the CLI)."""
    from rich.table import Table

    t = Table(title=title or None, title_justify="left", caption=SUMMARY_CAPTION, caption_justify="left")
    for i, h in enumerate(SUMMARY_HEADER):
        t.add_column(h, justify="right" if 0 < i < 5 else "left", no_wrap=i in (0, 3, 7))
    for row in summary_rows(results):
        t.add_row(*row)
    return t


def summary_markdown(results: Sequence[VariantResult]) -> str:
    """The same table as Markdown (for a README)."""
    lines = ["| " + " | ".join(SUMMARY_HEADER) + " |", "|" + "---|" * len(SUMMARY_HEADER)]
    lines += ["| " + " | ".join(row) + " |" for row in summary_rows(results)]
    return "\n".join(lines) + "\n"


def tflite_runtime_advice(results: Sequence[VariantResult]) -> list[str]:
    """One line per variant that tflite-runtime 2.14 cannot load: why, and which variant to pick instead."""
    lines = []
    for r in results:
        if r.loads_on(RUNTIME_214) is not False:
            continue
        why = r.runtimes[RUNTIME_214].why if RUNTIME_214 in r.runtimes else ""
        same = [o for o in results if o.size == r.size and o.loads_on(RUNTIME_214) and o.status != REJECTED]
        same.sort(key=lambda o: _PREFERENCE.index(o.kind.name))
        instead = (f"pick {same[0].name} instead" if same else
                   f"convert with --quantize int8 (full integer) or float16, which tflite-runtime 2.14 loads")
        lines.append(f"{r.name} will not load on tflite-runtime 2.14: {why}; {instead}")
    return lines
