"""The preprocessing contract (`edgeclf.preprocess`) in numpy/OpenCV, for frames on the edge.

A `Preprocessor` owns its buffers: each call crops a view, resizes into a fixed buffer, swaps BGR to RGB
in place of a copy, and scales/quantizes straight into the interpreter's input array. Nothing is
allocated per frame.
"""

from __future__ import annotations

import numpy as np

from edgeclf.bundle import TensorSpec
from edgeclf.errors import EdgeclfError
from edgeclf.preprocess import LETTERBOX_FILL, PreprocessSpec, center_crop_box, letterbox_pads

try:  # the first cv2 import of classify, camera and info --check
    import cv2
except ImportError as e:  # 32-bit Pi OS: no armv7 OpenCV wheel on PyPI; it comes from apt (docs/pi.md)
    raise EdgeclfError(f"OpenCV (cv2) cannot be imported ({e}); install `pip install opencv-python-headless`, "
                       "or on 32-bit Pi OS `sudo apt install python3-opencv` and a venv made with "
                       "--system-site-packages") from None

_RESIZE = {"bilinear": cv2.INTER_LINEAR}
_NP_DTYPES = {"float32": np.float32, "float16": np.float16, "uint8": np.uint8, "int8": np.int8}


class Preprocessor:
    """BGR uint8 frame (any size) -> model input batch of one, in the model's input dtype."""

    def __init__(self, spec: PreprocessSpec, tensor: TensorSpec = TensorSpec()):
        self.spec = spec
        self.tensor = tensor
        h, w = spec.height, spec.width
        self._resized = np.empty((h, w, 3), np.uint8)
        self._rgb = np.empty((h, w, 3), np.uint8)
        self._real = np.empty((h, w, 3), np.float32)
        self.out = np.empty((1, h, w, 3), _NP_DTYPES[tensor.dtype])
        # uint8 model input quantized as exactly pixel/255: the pixels are the input, no arithmetic.
        self._identity = (tensor.dtype == "uint8" and tensor.zero_point == 0 and spec.offset == 0.0
                          and abs(tensor.scale - spec.scale) < 1e-9)
        if tensor.quantized:
            info = np.iinfo(self.out.dtype)
            self._qmin, self._qmax = info.min, info.max

    def __call__(self, frame_bgr: np.ndarray) -> np.ndarray:
        if frame_bgr.ndim == 2:
            frame_bgr = cv2.cvtColor(frame_bgr, cv2.COLOR_GRAY2BGR)
        elif frame_bgr.shape[2] == 4:
            frame_bgr = cv2.cvtColor(frame_bgr, cv2.COLOR_BGRA2BGR)
        if self.spec.crop == "center":
            top, left, side = center_crop_box(frame_bgr.shape[0], frame_bgr.shape[1])
            frame_bgr = frame_bgr[top:top + side, left:left + side]
        elif self.spec.crop == "letterbox" and frame_bgr.shape[0] != frame_bgr.shape[1]:
            top, bottom, left, right = letterbox_pads(frame_bgr.shape[0], frame_bgr.shape[1])
            frame_bgr = cv2.copyMakeBorder(frame_bgr, top, bottom, left, right, cv2.BORDER_CONSTANT,
                                           value=(LETTERBOX_FILL,) * 3)
        cv2.resize(frame_bgr, (self.spec.width, self.spec.height), dst=self._resized,
                   interpolation=_RESIZE[self.spec.resize])
        cv2.cvtColor(self._resized, cv2.COLOR_BGR2RGB, dst=self._rgb)
        return self.from_rgb(self._rgb)

    def from_rgb(self, rgb: np.ndarray) -> np.ndarray:
        """Scale (and quantize) an already resized RGB uint8 image into `self.out`."""
        out = self.out[0]
        if self._identity:
            np.copyto(out, rgb)
            return self.out
        real = self._real
        np.multiply(rgb, np.float32(self.spec.scale), out=real)
        if self.spec.offset:
            real += np.float32(self.spec.offset)
        if self.tensor.quantized:
            real *= np.float32(1.0 / self.tensor.scale)
            real += np.float32(self.tensor.zero_point)
            np.rint(real, out=real)
            np.clip(real, self._qmin, self._qmax, out=real)
        np.copyto(out, real, casting="unsafe")
        return self.out

    def real_input(self) -> np.ndarray:
        """The last input as real (dequantized) values, for comparisons with the TensorFlow pipeline."""
        if self.tensor.quantized:
            return (self.out.astype(np.float32) - self.tensor.zero_point) * self.tensor.scale
        return self.out.astype(np.float32)
