"""On-the-fly augmentation in the tf.data pipeline (never part of the saved model).

Every random draw is a stateless op keyed by a per-example seed, so the same `--seed` gives the same
augmented batches, and a resumed run sees what an uninterrupted one would have.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class AugmentSpec:
    """Ranges of the random changes; flips are left-right only (a horse upside down is not a horse)."""

    flip: bool = True
    rotate_deg: float = 10.0
    zoom: float = 0.12  # scale drawn from [1 - zoom, 1 + zoom]
    shift: float = 0.08  # fraction of the side
    brightness: float = 0.12  # added, in units of the scaled input (1.0 = full range at x/255)
    contrast: float = 0.15  # factor drawn from [1 - contrast, 1 + contrast]


def augment(x: Any, seed: Any, spec: AugmentSpec, lo: float, hi: float) -> Any:
    """One HxWx3 float image -> the same shape, randomly flipped/rotated/zoomed/shifted/brightened.

    `seed` is an int64 tensor of shape [2]; `lo`/`hi` are the value range of a scaled input.
    """
    import tensorflow as tf

    seeds = tf.random.experimental.stateless_split(seed, 7)
    u = [tf.random.stateless_uniform([], seeds[i], -1.0, 1.0) for i in range(7)]
    if spec.flip:
        x = tf.cond(u[0] > 0, lambda: tf.reverse(x, axis=[1]), lambda: x)
    h = tf.cast(tf.shape(x)[0], tf.float32)
    w = tf.cast(tf.shape(x)[1], tf.float32)
    theta = u[1] * (spec.rotate_deg * math.pi / 180.0)
    z = 1.0 + u[2] * spec.zoom
    tx, ty = u[3] * spec.shift * w, u[4] * spec.shift * h
    c, s = tf.cos(theta) / z, tf.sin(theta) / z
    cx, cy = (w - 1.0) / 2.0, (h - 1.0) / 2.0
    # Output pixel (x, y) samples input (c*(x-cx) - s*(y-cy) + cx + tx, s*(x-cx) + c*(y-cy) + cy + ty).
    transform = tf.stack([c, -s, cx - c * cx + s * cy + tx, s, c, cy - s * cx - c * cy + ty, 0.0, 0.0])[None]
    x = tf.raw_ops.ImageProjectiveTransformV3(
        images=x[None], transforms=transform, output_shape=tf.shape(x)[:2], fill_value=0.0,
        interpolation="BILINEAR", fill_mode="REFLECT")[0]
    mean = tf.reduce_mean(x)
    x = (x - mean) * (1.0 + u[5] * spec.contrast) + mean + u[6] * spec.brightness * (hi - lo)
    return tf.clip_by_value(x, lo, hi)
