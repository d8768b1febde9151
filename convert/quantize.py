"""Quantization kinds as named constructors, validated before any work starts.

    float32   no quantization
    float16   weights stored as float16, computed in float32
    dynamic   dynamic-range: int8 weights, activations quantized on the fly
    int8      full integer: int8 weights and activations, calibrated on representative images;
              input/output uint8 (default; Coral/EdgeTPU style), int8 (microcontrollers) or float32
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator

from edgeclf.errors import UsageError

KINDS = ("float32", "float16", "dynamic", "int8")
IO_DTYPES = ("uint8", "int8", "float32")
DEFAULT_CALIBRATION = 300
MAX_CALIBRATION = 10_000


@dataclass(frozen=True)
class QuantizationKind:
    """One way of converting; `io_dtype` and `calibration` only mean something for int8."""

    name: str
    io_dtype: str = "float32"
    calibration: int = 0

    def __post_init__(self) -> None:
        if self.name not in KINDS:
            raise UsageError(f"--quantize {self.name!r} is not a quantization kind; expected one of {', '.join(KINDS)}")
        if self.io_dtype not in IO_DTYPES:
            raise UsageError(f"--io-dtype {self.io_dtype!r} is not supported; expected one of {', '.join(IO_DTYPES)}")
        if self.name != "int8" and self.io_dtype != "float32":
            raise UsageError(f"--io-dtype {self.io_dtype} needs full-integer quantization (--quantize int8); "
                             f"{self.name} models take and give float32")
        if self.name == "int8" and not 1 <= self.calibration <= MAX_CALIBRATION:
            raise UsageError(f"--calibration {self.calibration} is out of range; int8 needs 1..{MAX_CALIBRATION} "
                             f"representative images (a few hundred is plenty; default {DEFAULT_CALIBRATION})")

    @classmethod
    def for_float32(cls) -> "QuantizationKind":
        return cls("float32")

    @classmethod
    def for_float16(cls) -> "QuantizationKind":
        return cls("float16")

    @classmethod
    def for_dynamic(cls) -> "QuantizationKind":
        return cls("dynamic")

    @classmethod
    def for_int8(cls, io_dtype: str = "uint8", calibration: int = DEFAULT_CALIBRATION) -> "QuantizationKind":
        return cls("int8", io_dtype, calibration)

    @classmethod
    def parse(cls, name: str, io_dtype: str = "uint8", calibration: int = DEFAULT_CALIBRATION) -> "QuantizationKind":
        """A kind from its CLI name; int8 takes the io dtype and calibration count."""
        name = name.strip().lower()
        if name == "int8":
            return cls.for_int8(io_dtype, calibration)
        return cls(name)

    @property
    def needs_data(self) -> bool:
        """Whether conversion needs representative images (full-integer calibration)."""
        return self.name == "int8"

    @property
    def label(self) -> str:
        """How the variant is named: int8 with a non-default io dtype says so (int8-int8io, int8-float32io)."""
        if self.name == "int8" and self.io_dtype != "uint8":
            return f"int8-{self.io_dtype}io"
        return self.name

    def configure(self, converter: Any, representative: Callable[[], Iterator[list[Any]]] | None) -> None:
        """Set a tf.lite.TFLiteConverter's options for this kind."""
        import tensorflow as tf

        if self.name == "float32":
            return
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        if self.name == "float16":
            converter.target_spec.supported_types = [tf.float16]
        elif self.name == "int8":
            if representative is None:
                raise UsageError("int8 quantization needs representative images; none were given")
            converter.representative_dataset = representative
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            io = {"uint8": tf.uint8, "int8": tf.int8, "float32": tf.float32}[self.io_dtype]
            converter.inference_input_type = io
            converter.inference_output_type = io


def kinds_from_names(names: Iterable[str], io_dtype: str | None, calibration: int) -> tuple[QuantizationKind, ...]:
    """The kinds asked for on the command line, deduplicated in order; float32 when none was asked.

    `io_dtype` None means "not given" (int8 then uses uint8); given without an int8 kind it is an error.
    """
    names = list(dict.fromkeys(n.strip().lower() for n in names)) or ["float32"]
    kinds = tuple(QuantizationKind.parse(n, io_dtype or "uint8", calibration) for n in names)
    if io_dtype is not None and not any(k.name == "int8" for k in kinds):
        # validate the value itself first, then say it has nothing to apply to
        QuantizationKind.for_int8(io_dtype, calibration)
        raise UsageError(f"--io-dtype {io_dtype} applies to full-integer models only; add --quantize int8")
    return kinds
