"""On-the-fly augmentation in the tf.data pipeline (never part of the saved model).

What it covers is what a camera does to a subject the training folder showed framed and lit one way: the
subject smaller or larger in the frame and anywhere in it (zoom out onto a plain or noisy background, zoom
in, shift), tilted a little, lit differently (brightness, contrast, gamma, saturation, grayscale), a
different sensor (noise, blur, JPEG artefacts). `edgeclf.camsim` draws camera-like test frames from the
same families, independently (numpy/OpenCV), so the camera-sim score is not the training distribution
measuring itself.

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
    zoom_out: float = 0.5  # the subject shrinks to as little as this share of the side, on a background
    zoom_in: float = 1.15  # ... or grows to this (a crop)
    p_zoom_out: float = 0.5  # share of images zoomed out (the rest are zoomed in up to zoom_in)
    shift: float = 0.15  # fraction of the side, on top of what the zoom-out leaves free
    brightness: float = 0.15  # added, in units of the scaled input range
    contrast: float = 0.3  # factor drawn from [1 - contrast, 1 + contrast]
    gamma: float = 0.35  # exponent drawn from [1/(1+gamma), 1+gamma]
    saturation: float = 0.4  # factor drawn from [1 - saturation, 1 + saturation]
    p_gray: float = 0.1
    noise: float = 0.04  # sigma drawn from [0, noise] of the range
    p_blur: float = 0.25  # a 5-tap Gaussian blur, sigma in [0.5, 1.5] px

    @classmethod
    def wide(cls) -> "AugmentSpec":
        """`camera` with the framing a 4:3 camera gives after the centre crop: the subject down to 45 % of the
        side and up to a quarter of it out of the input at an edge."""
        return cls(zoom_out=0.45, shift=0.25)

    @classmethod
    def mild(cls) -> "AugmentSpec":
        """edgeclf 0.1's augmentation: flip, +-10 deg, +-12 % zoom, +-8 % shift, light brightness/contrast."""
        return cls(zoom_out=0.88, zoom_in=1.12, p_zoom_out=0.5, shift=0.08, brightness=0.12, contrast=0.15,
                   gamma=0.0, saturation=0.0, p_gray=0.0, noise=0.0, p_blur=0.0)


N_DRAWS = 16


def augment(x: Any, seed: Any, spec: AugmentSpec, lo: float, hi: float) -> Any:
    """One HxWx3 float image -> the same shape, randomly reframed, relit and degraded as a camera would.

    `seed` is an int64 tensor of shape [2]; `lo`/`hi` are the value range of a scaled input.
    """
    import tensorflow as tf

    seeds = tf.random.experimental.stateless_split(seed, N_DRAWS + 2)
    u = [tf.random.stateless_uniform([], seeds[i], 0.0, 1.0) for i in range(N_DRAWS)]
    rng = hi - lo
    x = (x - lo) / rng  # work in [0, 1]
    if spec.flip:
        x = tf.cond(u[0] > 0.5, lambda: tf.reverse(x, axis=[1]), lambda: x)
    h = tf.cast(tf.shape(x)[0], tf.float32)
    w = tf.cast(tf.shape(x)[1], tf.float32)
    # Scale of the subject: zoomed out (on a background) or in (cropped).
    z = tf.where(u[1] < spec.p_zoom_out, spec.zoom_out + u[2] * (1.0 - spec.zoom_out), 1.0 + u[2] * (spec.zoom_in - 1.0))
    free = tf.maximum(1.0 - z, 0.0) / 2.0  # room left on each side when zoomed out
    tx = (2.0 * u[3] - 1.0) * (free + spec.shift) * w
    ty = (2.0 * u[4] - 1.0) * (free + spec.shift) * h
    theta = (2.0 * u[5] - 1.0) * (spec.rotate_deg * math.pi / 180.0)
    c, s = tf.cos(theta) / z, tf.sin(theta) / z
    cx, cy = (w - 1.0) / 2.0, (h - 1.0) / 2.0
    # Output pixel (x, y) samples input (c*(x-cx) - s*(y-cy) + cx - tx', ...): the subject moves by (tx, ty).
    ox, oy = c * tx - s * ty, s * tx + c * ty
    transform = tf.stack([c, -s, cx - c * cx + s * cy - ox, s, c, cy - s * cx - c * cy - oy, 0.0, 0.0])[None]
    xm = tf.concat([x, tf.ones_like(x[..., :1])], axis=-1)  # a mask channel marks where the subject is
    xm = tf.raw_ops.ImageProjectiveTransformV3(
        images=xm[None], transforms=transform, output_shape=tf.shape(x)[:2], fill_value=0.0,
        interpolation="BILINEAR", fill_mode="CONSTANT")[0]
    mask = xm[..., 3:]
    # Background where the subject does not reach: a flat colour, plus texture noise half of the time.
    colour = tf.random.stateless_uniform([1, 1, 3], seeds[N_DRAWS], 0.0, 1.0)
    texture = tf.random.stateless_normal(tf.shape(x), seeds[N_DRAWS + 1], 0.0, 0.15) * tf.cast(u[6] > 0.5, tf.float32)
    x = xm[..., :3] + (1.0 - mask) * tf.clip_by_value(colour + texture, 0.0, 1.0)
    # Light: saturation (grayscale at times), contrast, gamma, brightness.
    gray = tf.reduce_mean(x, axis=-1, keepdims=True)
    sat = tf.where(u[7] < spec.p_gray, 0.0, 1.0 + (2.0 * u[8] - 1.0) * spec.saturation)
    x = gray + (x - gray) * sat
    mean = tf.reduce_mean(x)
    x = (x - mean) * (1.0 + (2.0 * u[9] - 1.0) * spec.contrast) + mean
    x = tf.clip_by_value(x, 0.0, 1.0)
    if spec.gamma:
        g = tf.exp((2.0 * u[10] - 1.0) * math.log(1.0 + spec.gamma))
        x = tf.pow(x + 1e-6, g)
    x = x + (2.0 * u[11] - 1.0) * spec.brightness
    # Sensor: blur at times, then noise.
    if spec.p_blur:
        sigma = 0.5 + u[12]
        taps = tf.exp(-tf.square(tf.range(-2.0, 3.0)) / (2.0 * sigma * sigma))
        taps = taps / tf.reduce_sum(taps)
        k = (taps[:, None] * taps[None, :])[:, :, None, None] * tf.ones([1, 1, 3, 1])
        blurred = tf.nn.depthwise_conv2d(x[None], k, [1, 1, 1, 1], "SAME")[0]
        x = tf.where(u[13] < spec.p_blur, blurred, x)
    if spec.noise:
        x = x + tf.random.stateless_normal(tf.shape(x), seeds[N_DRAWS - 1], 0.0, 1.0) * (u[14] * spec.noise)
    return tf.clip_by_value(x, 0.0, 1.0) * rng + lo
