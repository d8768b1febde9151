"""Model architectures by name: the course's nets and edge-first ones, built for one input size.

Every model takes float32 RGB already scaled by the PreprocessSpec (x/255), shape (None, size, size, 3),
and outputs probabilities: one sigmoid unit for two classes, softmax for three or more. Only standard
Keras layers (no Lambda), so saved models load with safe_mode=True and convert to TFLite.

The edge nets end in global average pooling, so one set of weights fits any input size
(`transfer_weights` copies them from a model built at another size). So do the pretrained backbones
(`edgeclf.train.backbones`): their own input scaling is a Rescaling layer after the x/255 input, the backbone
a nested model named "backbone", then GAP, dropout and the head.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from edgeclf.errors import UsageError
from edgeclf.train.backbones import BACKBONES


@dataclass(frozen=True)
class Arch:
    name: str
    summary: str
    build: Callable[[Any, int], Any]  # (inputs tensor, n_outputs) -> outputs tensor, softmax/sigmoid applied
    size_agnostic: bool  # True when the weights do not depend on the input size (GAP head)
    min_size: int = 32  # smallest input side the layers can take
    pretrained: bool = False  # a backbone of edgeclf.train.backbones: --weights imagenet|none|FILE applies


def _no_build(x: Any, n: int) -> Any:
    raise AssertionError("pretrained backbones are built by build_model")


def _head(x: Any, n_classes: int) -> Any:
    from keras import layers

    if n_classes == 2:
        return layers.Dense(1, activation="sigmoid", name="prob")(x)
    return layers.Dense(n_classes, activation="softmax", name="prob")(x)


def _seed_shape(filters: tuple[int, int], dense: int) -> Callable[[Any, int], Any]:
    """The course's seed net: 2x (Conv + MaxPool), Flatten, Dense, head; `seed` at its size, `test-tiny` (for
    tests, as timm registers its test models) at a few hundred weights so that a test trains in seconds."""

    def build(x: Any, n: int) -> Any:
        from keras import layers

        for f in filters:
            x = layers.Conv2D(f, 3, activation="relu")(x)
            x = layers.MaxPooling2D(2)(x)
        x = layers.Flatten()(x)
        x = layers.Dense(dense, activation="relu")(x)
        return _head(x, n)

    return build


def _course(x: Any, n: int) -> Any:
    from keras import layers

    for filters in (16, 32, 64, 64, 64):
        x = layers.Conv2D(filters, 3, activation="relu")(x)
        x = layers.MaxPooling2D(2)(x)
    x = layers.Flatten()(x)
    x = layers.Dense(512, activation="relu")(x)
    return _head(x, n)


def _conv_bn(x: Any, filters: int, strides: int = 1) -> Any:
    from keras import layers

    x = layers.Conv2D(filters, 3, strides=strides, padding="same", use_bias=False)(x)
    x = layers.BatchNormalization(momentum=0.9)(x)
    return layers.ReLU()(x)


def _sep_bn(x: Any, filters: int, strides: int = 1) -> Any:
    """Depthwise 3x3 + pointwise 1x1, each with BN + ReLU: MobileNet's block, cheap on a Pi."""
    from keras import layers

    x = layers.DepthwiseConv2D(3, strides=strides, padding="same", use_bias=False)(x)
    x = layers.BatchNormalization(momentum=0.9)(x)
    x = layers.ReLU()(x)
    x = layers.Conv2D(filters, 1, use_bias=False)(x)
    x = layers.BatchNormalization(momentum=0.9)(x)
    return layers.ReLU()(x)


TRUNK_MAX = 112  # the trunk of the edge nets starts at most this many pixels wide


def _to_trunk_scale(x: Any) -> Any:
    """Max-pool the stem's output until it is at most TRUNK_MAX wide.

    At 150 input the stem gives 75x75 and nothing happens; at 300 it gives 150x150, pooled to 75x75. The
    trunk then sees objects at the same scale at every input size (the stem still sees full resolution),
    so one set of weights serves both sizes and 300 costs little more than 150. No weights: it does not
    change what `transfer_weights` copies.
    """
    from keras import layers

    while x.shape[1] > TRUNK_MAX:
        x = layers.MaxPooling2D(2)(x)
    return x


def _gap_head(x: Any, n: int, dropout: float) -> Any:
    from keras import layers

    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(dropout)(x)
    return _head(x, n)


def _edge(widths: tuple[int, ...], dropout: float = 0.3) -> Callable[[Any, int], Any]:
    """Stride-2 stem (pooled to trunk scale), then conv-BN-ReLU + max-pool per width, a last conv, GAP."""

    def build(x: Any, n: int) -> Any:
        from keras import layers

        x = _to_trunk_scale(_conv_bn(x, widths[0], strides=2))
        for w in widths[1:-1]:
            x = _conv_bn(x, w)
            x = layers.MaxPooling2D(2)(x)
        x = _conv_bn(x, widths[-1])
        return _gap_head(x, n, dropout)

    return build


def _edge_sep(widths: tuple[int, ...], dropout: float = 0.3) -> Callable[[Any, int], Any]:
    """Full conv stem, then depthwise-separable blocks with stride 2, GAP."""

    def build(x: Any, n: int) -> Any:
        x = _to_trunk_scale(_conv_bn(x, widths[0], strides=2))
        for w in widths[1:]:
            x = _sep_bn(x, w, strides=2)
        return _gap_head(x, n, dropout)

    return build


ARCHS: dict[str, Arch] = {a.name: a for a in (
    Arch("seed", "course week 4 seed: 2x Conv64 + MaxPool, Flatten, Dense128", _seed_shape((64, 64), 128), False),
    Arch("course", "course notebook: Conv 16-32-64-64-64 + MaxPool, Flatten, Dense512", _course, False, 96),
    Arch("edge", "stride-2 stem + conv-BN blocks 16-32-64-128-128, GAP", _edge((16, 32, 64, 128, 128)), True),
    Arch("edge-s", "stride-2 stem + conv-BN blocks 8-16-32-64-64, GAP", _edge((8, 16, 32, 64, 64)), True),
    Arch("edge-sep", "conv stem + depthwise-separable blocks 16-32-64-128-256, GAP", _edge_sep((16, 32, 64, 128, 256)), True),
    Arch("test-tiny", "for tests: the seed net at Conv4 + Conv8, Dense16", _seed_shape((4, 8), 16), False, 16),
)}
ARCHS.update({b.name: Arch(b.name, b.summary, _no_build, True, b.min_size, pretrained=True) for b in BACKBONES.values()})
BACKBONE_DROPOUT = 0.2  # before the new head, as in Keras' transfer-learning guide


def get_arch(name: str) -> Arch:
    try:
        return ARCHS[name]
    except KeyError:
        raise UsageError(f"--arch {name!r} is not known; expected one of {', '.join(ARCHS)}") from None


def _backbone_classifier(inputs: Any, name: str, size: int, n: int, weights: str | None, frozen_bn: bool) -> Any:
    """x/255 -> the backbone's own scaling -> backbone (weights loaded) -> GAP -> dropout -> head.

    `frozen_bn`: call the backbone in inference mode (pretrained weights: its BatchNorm statistics are kept,
    as Keras' transfer-learning guide does); from scratch its BatchNorm layers train like any others.
    """
    from keras import layers

    from edgeclf.train.backbones.weights import load_into

    backbone = BACKBONES[name]
    net = backbone.build(size)
    load_into(backbone, net, weights)
    x = inputs
    if backbone.scaling is not None:
        scale, offset = backbone.scaling
        x = layers.Rescaling(scale, offset=offset, name="backbone_scaling")(x)
    x = net(x, training=False) if frozen_bn else net(x)
    return _gap_head(x, n, BACKBONE_DROPOUT)


def build_model(name: str, size: int, n_classes: int, weights: str | None = None, frozen_bn: bool = False) -> Any:
    """A fresh, uncompiled model for `size`x`size` RGB input.

    For a pretrained backbone, `weights` is what `edgeclf.train.backbones.weights.resolve` returned (None:
    random weights) and `frozen_bn` keeps its BatchNorm layers in inference mode."""
    import keras

    arch = get_arch(name)
    if size < arch.min_size:
        raise UsageError(f"--arch {name} needs inputs of at least {arch.min_size}x{arch.min_size}, got --size {size}")
    if n_classes < 2:
        raise UsageError(f"a classifier needs at least 2 classes, got {n_classes}")
    inputs = keras.Input((size, size, 3), dtype="float32", name="image")
    outputs = (_backbone_classifier(inputs, name, size, n_classes, weights, frozen_bn) if arch.pretrained
               else arch.build(inputs, n_classes))
    return keras.Model(inputs, outputs, name=f"{name.replace('-', '_')}_{size}")


def transfer_weights(src: Any, dst: Any) -> None:
    """Copy weights between two builds of a size-agnostic architecture (layer by layer, same shapes)."""
    a, b = src.get_weights(), dst.get_weights()
    if len(a) != len(b) or any(x.shape != y.shape for x, y in zip(a, b)):
        raise UsageError(f"cannot reuse weights of {src.name} in {dst.name}: the layer shapes differ")
    dst.set_weights(a)
