"""The preprocessing contract, implemented in TensorFlow (training) and numpy/OpenCV (edge), agrees."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from edgeclf.bundle import TensorSpec
from edgeclf.edge.preprocess import Preprocessor
from edgeclf.imageio import read_bgr
from edgeclf.preprocess import PreprocessSpec


@pytest.fixture(scope="module")
def images(tmp_path_factory, shared_data: Path) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("parity")
    rgba = d / "rgba.png"
    shutil.copy(next(iter(sorted((shared_data / "humans").glob("*.png")))), rgba)
    src = cv2.imread(str(rgba), cv2.IMREAD_COLOR)
    cv2.imwrite(str(d / "gray.png"), cv2.cvtColor(src, cv2.COLOR_BGR2GRAY))
    cv2.imwrite(str(d / "photo.jpg"), src, [cv2.IMWRITE_JPEG_QUALITY, 90])
    cv2.imwrite(str(d / "sixteen.png"), src.astype(np.uint16) * 257)
    wide = cv2.resize(src, (400, 260))
    cv2.imwrite(str(d / "wide.png"), wide)
    return {p.stem: p for p in d.iterdir()}


@pytest.mark.parametrize("size", [150, 300, 96])
@pytest.mark.parametrize("name", ["rgba", "gray", "photo", "sixteen", "wide"])
def test_tf_and_edge_match(images, name: str, size: int) -> None:
    from edgeclf.train.tfdata import load_and_preprocess

    spec = PreprocessSpec(size, size)
    tf_x = load_and_preprocess(str(images[name]), spec).numpy()
    edge_x = Preprocessor(spec)(read_bgr(images[name]))[0]
    assert tf_x.shape == edge_x.shape == (size, size, 3)
    assert np.abs(tf_x - edge_x).max() <= 1 / 255 + 1e-6


def test_rgb_order_reaches_model(tmp_path: Path) -> None:
    """A pure red file is red (channel 0) in the model input on both paths: BGR never reaches a model."""
    from edgeclf.train.tfdata import load_and_preprocess

    bgr = np.zeros((32, 32, 3), np.uint8)
    bgr[..., 2] = 255  # red in OpenCV's BGR order
    cv2.imwrite(str(tmp_path / "red.png"), bgr)
    spec = PreprocessSpec(16, 16)
    for x in (load_and_preprocess(str(tmp_path / "red.png"), spec).numpy(), Preprocessor(spec)(bgr)[0]):
        assert x[..., 0].min() == pytest.approx(1.0) and x[..., 1:].max() == 0.0


@pytest.mark.parametrize("tensor", [TensorSpec("uint8", 1 / 255, 0), TensorSpec("int8", 1 / 255, -128),
                                    TensorSpec("float16")])
def test_quantized_input_dequantizes_to_float_input(images, tensor: TensorSpec) -> None:
    spec = PreprocessSpec(150, 150)
    frame = read_bgr(images["rgba"])
    ref = Preprocessor(spec)(frame)[0]
    p = Preprocessor(spec, tensor)
    out = p(frame)
    assert out.dtype == np.dtype(tensor.dtype)
    assert np.abs(p.real_input()[0] - ref).max() <= (tensor.scale or 1e-3) / 2 + 1e-6


@pytest.mark.parametrize("crop", ["letterbox", "none", "center"])
@pytest.mark.parametrize("name", ["wide", "rgba"])
def test_every_crop_mode_matches(images, name: str, crop: str) -> None:
    from edgeclf.train.tfdata import load_and_preprocess

    spec = PreprocessSpec(150, 150, crop=crop)
    tf_x = load_and_preprocess(str(images[name]), spec).numpy()
    edge_x = Preprocessor(spec)(read_bgr(images[name]))[0]
    assert np.abs(tf_x - edge_x).max() <= 1 / 255 + 1e-6


def test_letterbox_keeps_the_whole_frame_with_grey_bars() -> None:
    from edgeclf.preprocess import LETTERBOX_FILL

    frame = np.zeros((60, 120, 3), np.uint8)
    frame[:, :10] = (0, 0, 255)  # a red strip at the left edge: centre crop loses it, letterbox keeps it
    box = Preprocessor(PreprocessSpec(60, 60, crop="letterbox"))(frame)[0]
    centre = Preprocessor(PreprocessSpec(60, 60, crop="center"))(frame)[0]
    assert box[30, 1, 0] == pytest.approx(1.0) and centre[..., 0].max() == 0.0
    assert box[2, 30] == pytest.approx(np.full(3, LETTERBOX_FILL / 255), abs=1e-6)  # top bar
