"""A pretrained net's frozen trunk, run once per augmented view instead of once per step (`--feature-views K`).

In both phases of the transfer recipe (`edgeclf.train.recipe`) the backbone below the top --fine-tune-blocks
blocks is frozen and its BatchNorm layers are in inference mode, so its output for an image is a fixed function
of the (augmented) pixels. Training re-ran it at every step of every epoch, and on a CPU that forward pass is
most of a run. Here it runs once per image for each of K augmented views (view v is exactly the augmentation
epoch v would have drawn, `train.tfdata.train_dataset`); epoch e then trains the top blocks and the head on view
e mod K, reshuffled by (--seed, e). With K equal to the epochs every epoch sees the pixels it saw before; a
smaller K reuses views (the choice of K is a measured one: docs/training.md#training-speed).

`split` cuts the model into `trunk` (image -> features at the cut) and `top` (features -> probabilities); `top`
calls the very layers of the full model, so training it trains the full model, which is what gets saved and
converted. A net whose top part reads a tensor from below the cut cannot be split: `split` returns None and
the run trains as before.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

import numpy as np

from edgeclf.preprocess import PreprocessSpec
from edgeclf.progress import Progress
from edgeclf.train.recipe import BACKBONE_LAYER, first_trained_block

log = logging.getLogger(__name__)

FEATURE_BUDGET = 2 * 1024**3  # bytes of cached float32 features per size; fewer views above it


@dataclass(frozen=True)
class CutModel:
    trunk: Any  # the full model's input -> features at the cut (inference mode)
    top: Any  # features at the cut -> the full model's output; its layers are the full model's
    cut: str  # the first layer above the cut, or "" for the backbone's output
    forward: Any  # trunk in inference mode as one traced function (any batch size)


def split(model: Any, blocks: Sequence[str], fine_tune_blocks: int) -> CutModel | None:
    """Cut `model` (a pretrained classifier of `edgeclf.train.archs`) below its top `fine_tune_blocks` blocks."""
    import keras

    net = model.get_layer(BACKBONE_LAYER)
    names = [layer.name for layer in model.layers]
    at = names.index(BACKBONE_LAYER)
    cut = first_trained_block(blocks, fine_tune_blocks) if fine_tune_blocks else ""
    try:
        cut_tensor = net.get_layer(cut).input if cut else net.output
        if isinstance(cut_tensor, (list, tuple)):
            return None
        lower = keras.Model(net.input, cut_tensor, name="trunk_backbone")
        upper = keras.Model(cut_tensor, net.output, name="top_backbone") if cut else None
    except ValueError as e:  # the top part reads a tensor from below the cut
        log.info("%s: cannot cut below %s (%s); the backbone runs every step", model.name, cut, e)
        return None
    x = model.input
    for layer in model.layers[1:at]:  # the backbone's own input scaling, if any
        x = layer(x)
    trunk = keras.Model(model.input, lower(x, training=False), name="trunk")
    inp = keras.Input(tuple(cut_tensor.shape[1:]), name="features")
    y = upper(inp, training=False) if upper is not None else inp
    for layer in model.layers[at + 1:]:  # GAP, dropout, head: a chain (`archs._gap_head`)
        y = layer(y)
    return CutModel(trunk, keras.Model(inp, y, name="top"), cut, _forward(trunk))


@dataclass(frozen=True)
class Features:
    x: np.ndarray  # (views * n, *feature shape) float32: view v's image i at v * n + i
    y: np.ndarray  # labels, same order
    views: int
    n: int


def views_that_fit(views: int, n: int, shape: Sequence[int]) -> int:
    """How many of `views` views of `n` images' features (float32, `shape` each) fit FEATURE_BUDGET; 0: not one."""
    per_view = n * int(np.prod(shape)) * 4
    return min(views, FEATURE_BUDGET // max(per_view, 1))


def _forward(trunk: Any) -> Any:
    import tensorflow as tf

    spec = tf.TensorSpec((None, *trunk.inputs[0].shape[1:]), tf.float32)
    return tf.function(lambda x: trunk(x, training=False), input_signature=[spec], autograph=False)


def compute(sp: CutModel, batches: Any, n: int, views: int, progress: Progress | None = None,
            what: str = "") -> Features:
    """Run the trunk over `batches` (views * ceil(n / batch) batches of (image, label), view after view)."""
    report = (lambda done: progress(f"{what}: trunk features, {views} view(s)", done, views * n)) if progress else None
    x_all, y_all = held_out_features(sp, batches, report)
    if len(x_all) != views * n:
        raise RuntimeError(f"trunk features: {len(x_all)} rows for {views} views of {n} images")
    return Features(x_all, y_all, views, n)


def held_out_features(sp: CutModel, batches: Any, report: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """Features and labels of `batches`, in order (`report(rows done)` after each batch)."""
    xs: list[np.ndarray] = []
    ys: list[np.ndarray] = []
    done = 0
    for x, y in batches:
        xs.append(np.asarray(sp.forward(x), dtype=np.float32))
        ys.append(np.asarray(y))
        done += len(xs[-1])
        if report:
            report(done)
    return np.concatenate(xs), np.concatenate(ys)


def epoch_order(f: Features, seed: int, epoch: int) -> np.ndarray:
    """Rows of `f.x` epoch `epoch` trains on: view epoch mod K, shuffled by (seed, epoch)."""
    v = epoch % f.views
    return v * f.n + np.random.default_rng([int(seed), 7_001, int(epoch)]).permutation(f.n)


def train_batches(f: Features, seed: int, first_epoch: int, epochs: int, batch_size: int) -> Any:
    """tf.data batches of cached features for epochs first_epoch..epochs-1, ceil(n / batch_size) per epoch."""
    import tensorflow as tf

    def gen() -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for e in range(first_epoch, epochs):
            rows = epoch_order(f, seed, e)
            for s in range(0, f.n, batch_size):
                idx = rows[s:s + batch_size]
                yield f.x[idx], f.y[idx]

    sig = (tf.TensorSpec((None, *f.x.shape[1:]), tf.float32), tf.TensorSpec((None, *f.y.shape[1:]), tf.as_dtype(f.y.dtype)))
    return tf.data.Dataset.from_generator(gen, output_signature=sig).prefetch(2)


def eval_batches(x: np.ndarray, y: np.ndarray, batch_size: int) -> Any:
    import tensorflow as tf

    return tf.data.Dataset.from_tensor_slices((x, y)).batch(batch_size)


def restore_optimizer(top: Any, backup: Any) -> None:
    """Copy a backup's optimizer state (iterations, RMSprop slots) into `top`'s freshly compiled optimizer: a run
    resumed inside a phase continues it as if never stopped. Both models have the same trainable variables."""
    top.optimizer.build(top.trainable_variables)
    mine, theirs = top.optimizer.variables, backup.optimizer.variables
    if len(mine) != len(theirs) or any(a.shape != b.shape for a, b in zip(mine, theirs)):
        raise RuntimeError("the backup's optimizer state does not match the model's trainable layers")
    for a, b in zip(mine, theirs):
        a.assign(b)


def describe_cache(spec: PreprocessSpec, split_: CutModel, f: Features, seconds: float) -> str:
    shape = "x".join(str(d) for d in f.x.shape[1:])
    where = f"below {split_.cut}" if split_.cut else "at the backbone's output"
    return (f"{spec.height} px: trunk features ({where}, {shape}) of {f.n} images x {f.views} augmented view(s) "
            f"in {seconds:.0f} s, {f.x.nbytes / 1e6:.0f} MB; each epoch trains the top on one view")
