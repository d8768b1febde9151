"""The preprocessing contract, defined once.

decode -> RGB uint8 (alpha dropped, gray replicated, 16-bit reduced to 8) -> square it: centre crop
(`center`, the default: the middle of a 4:3 frame, the subject fills more of the input), grey bars
(`letterbox`: the whole frame, a subject near the edge stays in) or neither (`none`: the frame squeezed,
shapes distorted) -> resize to (height, width) with `resize` -> float32 * scale + offset.

It is implemented twice: in TensorFlow for training (`edgeclf.train.tfdata`) and in numpy/OpenCV for the
edge (`edgeclf.edge.preprocess`). `tests/test_parity.py` holds them to within 1/255 of each other.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import asdict, dataclass
from typing import Any, Mapping

from .errors import BundleError

MAX_SIDE = 8192  # an input side past this is no edge classifier's


def _shown(value: Any) -> str:
    r = repr(value)
    return r if len(r) <= 60 else r[:57] + "..."


def field_mapping(value: Any, where: str) -> Mapping[str, Any]:
    """`value` when it is a JSON object; else a BundleError naming the field."""
    if not isinstance(value, Mapping):
        raise BundleError(f"{where}: expected a JSON object, got {type(value).__name__} {_shown(value)}")
    return value


def field_str(value: Any, where: str, allowed: tuple[str, ...] | None = None) -> str:
    if not isinstance(value, str):
        raise BundleError(f"{where}: expected a string, got {type(value).__name__} {_shown(value)}")
    if allowed is not None and value not in allowed:
        raise BundleError(f"{where}: {_shown(value)} is not supported; expected one of {', '.join(allowed)}")
    return value


def field_int(value: Any, where: str, lo: int | None = None, hi: int | None = None) -> int:
    """A whole JSON number (150, not 150.0 nor true) within [lo, hi]."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise BundleError(f"{where}: expected a whole number, got {type(value).__name__} {_shown(value)}")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        span = f"{lo}..{hi}" if hi is not None else f"{lo} or more"
        raise BundleError(f"{where}: {value} is out of range; expected {span}")
    return int(value)


def field_number(value: Any, where: str, nonzero: bool = False, positive: bool = False) -> float:
    """A finite JSON number (no NaN, no Infinity, no string), optionally non-zero or positive."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise BundleError(f"{where}: expected a number, got {type(value).__name__} {_shown(value)}")
    v = float(value)
    if not math.isfinite(v):
        raise BundleError(f"{where}: {v} is not a finite number")
    if positive and not v > 0:
        raise BundleError(f"{where}: {v} must be positive")
    if nonzero and v == 0:
        raise BundleError(f"{where}: 0 would make every input the same; expected a non-zero number")
    return v


RESIZE_METHODS = ("bilinear",)
CROP_MODES = ("center", "none", "letterbox")
LETTERBOX_FILL = 128  # grey bars: the pixel value (every channel) that pads a frame to a square


@dataclass(frozen=True)
class PreprocessSpec:
    """How a frame becomes a model input. Colour order is always RGB: OpenCV's BGR never reaches a model."""

    height: int
    width: int
    channels: int = 3
    color: str = "RGB"
    scale: float = 1.0 / 255.0
    offset: float = 0.0
    resize: str = "bilinear"
    crop: str = "center"

    def __post_init__(self) -> None:
        field_int(self.height, "preprocess.height", 1, MAX_SIDE)
        field_int(self.width, "preprocess.width", 1, MAX_SIDE)
        field_number(self.scale, "preprocess.scale", nonzero=True)
        field_number(self.offset, "preprocess.offset")
        if self.channels != 3 or self.color != "RGB":
            raise BundleError(f"preprocess: got {self.channels} channels in {self.color!r}; edgeclf models take 3-channel RGB")
        if self.resize not in RESIZE_METHODS:
            raise BundleError(f"preprocess: resize {self.resize!r} is not supported; expected one of {RESIZE_METHODS}")
        if self.crop not in CROP_MODES:
            raise BundleError(f"preprocess: crop {self.crop!r} is not supported; expected one of {CROP_MODES}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str = "preprocess") -> "PreprocessSpec":
        field_mapping(d, where)
        missing = [k for k in ("height", "width") if k not in d]
        if missing:
            raise BundleError(f"{where}: missing key(s) {', '.join(missing)}")
        known = {k: d[k] for k in cls.__dataclass_fields__ if k in d}
        for k in ("height", "width", "channels"):
            if k in known:
                field_int(known[k], f"{where}.{k}", 1, MAX_SIDE)
        for k in ("scale", "offset"):
            if k in known:
                field_number(known[k], f"{where}.{k}", nonzero=k == "scale")
        for k in ("color", "resize", "crop"):
            if k in known:
                field_str(known[k], f"{where}.{k}")
        return cls(**known)

    def with_size(self, size: int) -> "PreprocessSpec":
        return PreprocessSpec(**{**self.to_dict(), "height": size, "width": size})


def letterbox_pads(height: int, width: int) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) padding that makes a frame square around its centre; both
    implementations use this arithmetic."""
    side = max(height, width)
    top, left = (side - height) // 2, (side - width) // 2
    return top, side - height - top, left, side - width - left


def center_crop_box(height: int, width: int) -> tuple[int, int, int]:
    """(top, left, side) of the largest centred square; both implementations use this arithmetic."""
    side = min(height, width)
    return (height - side) // 2, (width - side) // 2, side
