"""The preprocessing contract, defined once.

decode -> RGB uint8 (alpha dropped, gray replicated, 16-bit reduced to 8) -> square it: centre crop
(`center`, the default: the middle of a 4:3 frame, the subject fills more of the input), grey bars
(`letterbox`: the whole frame, a subject near the edge stays in) or neither (`none`: the frame squeezed,
shapes distorted) -> resize to (height, width) with `resize` -> float32 * scale + offset.

It is implemented twice: in TensorFlow for training (`edgeclf.train.tfdata`) and in numpy/OpenCV for the
edge (`edgeclf.edge.preprocess`). `tests/test_parity.py` holds them to within 1/255 of each other.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Mapping

from .errors import BundleError

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
        if self.height <= 0 or self.width <= 0:
            raise BundleError(f"preprocess: input size {self.height}x{self.width} must be positive")
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
        missing = [k for k in ("height", "width") if k not in d]
        if missing:
            raise BundleError(f"{where}: missing key(s) {', '.join(missing)}")
        known = {k: d[k] for k in cls.__dataclass_fields__ if k in d}
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
