"""The transfer-learning recipe: which layers train in which epochs, at which learning rate.

A pretrained --arch (`edgeclf.train.backbones`) trains in two phases, as Keras' transfer-learning guide does:

1. `head`: the backbone frozen (its BatchNorm layers in inference mode), only the new head trains, at --lr,
   for --head-epochs;
2. `fine-tune`: the top --fine-tune-blocks blocks of the backbone train too, at --fine-tune-lr, for the rest of
   --epochs. BatchNorm layers stay frozen (inference mode, ImageNet statistics): a few hundred images would
   wreck them.

A size warm-started from a smaller size's model (it has a trained head) runs the fine-tune phase only, for
--warm-epochs. With --weights none nothing is frozen: the whole net trains from scratch at --lr (BatchNorm
included), like the edge nets. The from-scratch archs have one phase, `all`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from edgeclf.train.backbones import BACKBONES, Backbone
from edgeclf.train.config import TrainConfig

BACKBONE_LAYER = "backbone"  # the name of the nested backbone model inside a classifier


@dataclass(frozen=True)
class Phase:
    kind: str  # head, fine-tune, all
    start: int  # epochs done before it
    end: int  # epochs done after it
    lr: float

    @property
    def epochs(self) -> int:
        return self.end - self.start


def phases(cfg: TrainConfig, epochs: int, warm: bool) -> tuple[Phase, ...]:
    """The phases of one size's `epochs` epochs (`warm`: started from a smaller size's trained model)."""
    if cfg.arch not in BACKBONES or cfg.weights == "none":
        return (Phase("all", 0, epochs, cfg.lr),)
    if warm:
        return (Phase("fine-tune", 0, epochs, cfg.fine_tune_lr) if cfg.fine_tune_blocks
                else Phase("head", 0, epochs, cfg.lr),)
    head = min(cfg.head_epochs, epochs)
    if head == epochs or not cfg.fine_tune_blocks:
        return (Phase("head", 0, epochs, cfg.lr),)
    return Phase("head", 0, head, cfg.lr), Phase("fine-tune", head, epochs, cfg.fine_tune_lr)


def walk(layer: Any) -> list[Any]:
    """A layer and, for a nested model, every layer inside it, in order."""
    out = [layer]
    for sub in getattr(layer, "layers", ()):
        out += walk(sub)
    return out


def is_bn(layer: Any) -> bool:
    import keras

    return isinstance(layer, keras.layers.BatchNormalization)


def first_trained_block(blocks: Sequence[str], fine_tune_blocks: int) -> str:
    """The first layer of the lowest block that fine-tuning trains (the top `fine_tune_blocks` of `blocks`)."""
    return blocks[max(len(blocks) - fine_tune_blocks, 0)]


def apply(model: Any, phase: Phase, backbone: Backbone | None, fine_tune_blocks: int) -> None:
    """Set which layers of `model` train in `phase` (compile after this)."""
    if backbone is None:
        return
    net = model.get_layer(BACKBONE_LAYER)
    if phase.kind == "all":
        net.trainable = True
        return
    net.trainable = False
    if phase.kind == "head":
        return
    first = first_trained_block(backbone.blocks, fine_tune_blocks)
    layers = walk(net)[1:]
    names = [layer.name for layer in layers]
    if first not in names:
        raise RuntimeError(f"{backbone.name}: no layer {first!r} in the backbone; its block list is out of date")
    net.trainable = True  # the flag of the nested model itself; each layer below is set one by one
    start = names.index(first)
    for i, layer in enumerate(layers):
        if not getattr(layer, "layers", None):
            layer.trainable = i >= start and not is_bn(layer)


def describe(phase: Phase, backbone: Backbone | None, fine_tune_blocks: int) -> str:
    if phase.kind == "head":
        return f"head only (backbone frozen), lr {phase.lr:g}"
    if phase.kind == "fine-tune":
        n = min(fine_tune_blocks, len(backbone.blocks)) if backbone else fine_tune_blocks
        return f"fine-tuning the top {n} blocks (BatchNorm frozen), lr {phase.lr:g}"
    return f"all layers, lr {phase.lr:g}"
