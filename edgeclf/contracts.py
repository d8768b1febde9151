"""Typed parts of the contracts between train, convert, bench and edge: a manifest's `source`, `metrics` and
`runtimes`, and the test figure with its interval (`Interval`).

Readers get fields, not mappings to guess at: `m.source.quantization`, `m.metrics.agreement` (0..1),
`m.runtimes["tflite-runtime-2.14"].loads`. Each `from_dict` checks types and ranges and names the field it
refuses (a `BundleError`); each `to_dict` writes the same JSON as before (absent fields stay absent), so
bundles on disk are unchanged. Standard library only: the Pi side reads these too.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Mapping

from .errors import BundleError
from .preprocess import field_int, field_mapping, field_number, field_str


def field_fraction(value: Any, where: str) -> float:
    """A number in 0..1 (shared by the manifest's records: here and `edgeclf.calibration`)."""
    v = field_number(value, where)
    if not 0.0 <= v <= 1.0:
        raise BundleError(f"{where}: expected a fraction in 0..1, got {v}")
    return v


@dataclass(frozen=True)
class Interval:
    """Top-1 accuracy on a test set with its 95 % bootstrap interval over groups (`edgeclf.metrics`)."""

    accuracy: float
    low: float
    high: float
    n_images: int
    n_groups: int
    enough: bool  # False: too few groups for a meaningful figure; `note` says why
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str = "interval") -> "Interval":
        d = field_mapping(d, where)
        for key in ("accuracy", "low", "high", "n_images", "n_groups", "enough"):
            if key not in d:
                raise BundleError(f"{where}: missing key {key!r}")
        if not isinstance(d["enough"], bool):
            raise BundleError(f"{where}.enough: expected true or false, got {d['enough']!r}")
        return cls(field_fraction(d["accuracy"], f"{where}.accuracy"), field_fraction(d["low"], f"{where}.low"),
                   field_fraction(d["high"], f"{where}.high"), field_int(d["n_images"], f"{where}.n_images", 0),
                   field_int(d["n_groups"], f"{where}.n_groups", 0), d["enough"],
                   field_str(d.get("note", ""), f"{where}.note"))

    def text(self) -> str:
        """'0.912 [0.85, 0.96] · 13 subjects, 201 images' (or the reason there is no figure)."""
        if not self.enough:
            return f"{self.accuracy:.3f}? ({self.note})"
        return (f"{self.accuracy:.3f} [{self.low:.2f}, {self.high:.2f}] · {self.n_groups} groups, "
                f"{self.n_images} images")


def present_fields(obj: Any) -> dict[str, Any]:
    """The fields that are set, in declaration order (None means absent from the JSON)."""
    return {f.name: getattr(obj, f.name) for f in fields(obj) if getattr(obj, f.name) is not None}


@dataclass(frozen=True)
class Source:
    """Where a bundle came from: the run directory, architecture, input side, quantization kind, I/O dtype."""

    run: str | None = None
    arch: str | None = None
    size: int | None = None
    quantization: str | None = None
    io_dtype: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return present_fields(self)

    @classmethod
    def from_dict(cls, value: Any, where: str = "source") -> "Source":
        d = field_mapping(value, where)
        return cls(**{k: (field_int(d[k], f"{where}.{k}", 1) if k == "size" else field_str(d[k], f"{where}.{k}"))
                      for k in ("run", "arch", "size", "quantization", "io_dtype") if d.get(k) is not None})


@dataclass(frozen=True)
class BundleMetrics:
    """What a variant measured at conversion: accuracies and agreement in 0..1, the drop in percentage points,
    the mean absolute score difference, the number of images, the gate's status, the test figure, and on which
    side (`measured_on`) it was measured."""

    accuracy: float | None = None
    keras_accuracy: float | None = None
    delta_pp: float | None = None
    agreement: float | None = None
    mean_abs_diff: float | None = None
    n: int | None = None
    status: str | None = None
    test: Interval | None = None
    measured_on: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d = present_fields(self)
        if self.test is not None:
            d["test"] = self.test.to_dict()
        return d

    @classmethod
    def from_dict(cls, value: Any, where: str = "metrics") -> "BundleMetrics":
        d = field_mapping(value, where)
        got: dict[str, Any] = {}
        for k in ("accuracy", "keras_accuracy", "agreement"):
            if d.get(k) is not None:
                got[k] = field_fraction(d[k], f"{where}.{k}")
        for k in ("delta_pp", "mean_abs_diff"):
            if d.get(k) is not None:
                got[k] = field_number(d[k], f"{where}.{k}")
        if d.get("n") is not None:
            got["n"] = field_int(d["n"], f"{where}.n", 0)
        for k in ("status", "measured_on"):
            if d.get(k) is not None:
                got[k] = field_str(d[k], f"{where}.{k}")
        if d.get("test") is not None:
            got["test"] = Interval.from_dict(d["test"], f"{where}.test")
        return cls(**got)


@dataclass(frozen=True)
class RuntimeVerdict:
    """Whether a runtime loads a bundle (None: not checked), why, and how that was judged ("load+invoke",
    "op-version table", "not checked")."""

    loads: bool | None
    why: str = ""
    source: str = ""

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"loads": self.loads, "why": self.why}
        if self.source:
            d["source"] = self.source
        return d

    @classmethod
    def from_dict(cls, value: Any, where: str = "runtime") -> "RuntimeVerdict":
        d = field_mapping(value, where)
        loads = d.get("loads")
        if loads is not None and not isinstance(loads, bool):
            raise BundleError(f"{where}.loads: expected true, false or null, got {loads!r}")
        return cls(loads, field_str(d.get("why") or "", f"{where}.why"),
                   field_str(d.get("source") or "", f"{where}.source"))


def runtimes_from_dict(value: Any, where: str = "runtimes") -> dict[str, RuntimeVerdict]:
    """{"ai-edge-litert": {"loads": true, "why": ""}, ...}: runtime names to verdicts."""
    return {str(name): RuntimeVerdict.from_dict(v, f"{where}.{name}") for name, v in field_mapping(value, where).items()}
