"""On-the-fly augmentation in the tf.data pipeline (never part of the saved model).

What it covers is what a camera does to a subject the training folder showed framed and lit one way: the
subject smaller or larger in the frame and anywhere in it (zoom out onto a plain or noisy background, zoom
in, shift), tilted a little, lit differently (brightness, contrast, gamma, saturation, grayscale), a
different sensor (noise, blur, JPEG artefacts). `edgeclf.camsim` draws camera-like test frames from the
same families, independently (numpy/OpenCV), so the camera-sim score is not the training distribution
measuring itself.

Every random draw is a stateless op keyed by a per-batch seed, so the same `--seed` gives the same
augmented batches, and a resumed run sees what an uninterrupted one would have. The work is done on the
whole batch at once (`augment_batch`: one projective transform, one blur, one noise draw for all images),
not image by image: fewer, larger ops for TensorFlow's thread pool.
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
    """One HxWx3 float image -> the same shape, randomly reframed, relit and degraded as a camera would."""
    return augment_batch(x[None], seed, spec, lo, hi)[0]


def augment_batch(x: Any, seed: Any, spec: AugmentSpec, lo: float, hi: float) -> Any:
    """A BxHxWx3 float batch -> the same shape, each image with its own random changes, in whole-batch ops.

    `seed` is an int64 tensor of shape [2] (one per batch: the draws of every image derive from it); `lo`/`hi`
    are the value range of a scaled input.
    """
    import tensorflow as tf

    seeds = tf.random.experimental.stateless_split(seed, 4)
    shape = tf.shape(x)
    b = shape[0]
    u = tf.random.stateless_uniform(tf.stack([N_DRAWS, b]), seeds[0], 0.0, 1.0)  # u[i]: one draw per image

    def per_image(v: Any) -> Any:  # [B] -> [B, 1, 1, 1], to scale whole images
        return tf.reshape(v, [-1, 1, 1, 1])

    rng = hi - lo
    x = (x - lo) / rng  # work in [0, 1]
    if spec.flip:
        x = tf.where(per_image(u[0]) > 0.5, tf.reverse(x, axis=[2]), x)
    h = tf.cast(shape[1], tf.float32)
    w = tf.cast(shape[2], tf.float32)
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
    zero = tf.zeros_like(c)
    transform = tf.stack([c, -s, cx - c * cx + s * cy - ox, s, c, cy - s * cx - c * cy - oy, zero, zero], axis=1)
    xm = tf.concat([x, tf.ones_like(x[..., :1])], axis=-1)  # a mask channel marks where the subject is
    xm = tf.raw_ops.ImageProjectiveTransformV3(
        images=xm, transforms=transform, output_shape=shape[1:3], fill_value=0.0,
        interpolation="BILINEAR", fill_mode="CONSTANT")
    mask = xm[..., 3:]
    # Background where the subject does not reach: a flat colour, plus texture noise half of the time.
    colour = tf.random.stateless_uniform(tf.stack([b, 1, 1, 3]), seeds[1], 0.0, 1.0)
    texture = tf.random.stateless_normal(shape, seeds[2], 0.0, 0.15) * per_image(tf.cast(u[6] > 0.5, tf.float32))
    x = xm[..., :3] + (1.0 - mask) * tf.clip_by_value(colour + texture, 0.0, 1.0)
    # Light: saturation (grayscale at times), contrast, gamma, brightness.
    gray = tf.reduce_mean(x, axis=-1, keepdims=True)
    sat = tf.where(u[7] < spec.p_gray, 0.0, 1.0 + (2.0 * u[8] - 1.0) * spec.saturation)
    x = gray + (x - gray) * per_image(sat)
    mean = tf.reduce_mean(x, axis=[1, 2, 3], keepdims=True)
    x = (x - mean) * per_image(1.0 + (2.0 * u[9] - 1.0) * spec.contrast) + mean
    x = tf.clip_by_value(x, 0.0, 1.0)
    if spec.gamma:
        g = tf.exp((2.0 * u[10] - 1.0) * math.log(1.0 + spec.gamma))
        x = tf.pow(x + 1e-6, per_image(g))
    x = x + per_image((2.0 * u[11] - 1.0) * spec.brightness)
    # Sensor: blur at times (a separable 5-tap Gaussian, sigma in [0.5, 1.5] px, zeros outside), then noise.
    if spec.p_blur:
        sigma = 0.5 + u[12]
        taps = tf.exp(-tf.square(tf.range(-2.0, 3.0))[None] / (2.0 * sigma * sigma)[:, None])  # [B, 5]
        taps = taps / tf.reduce_sum(taps, axis=1, keepdims=True)
        x = _blur_picked(x, taps, u[13] < spec.p_blur)
    if spec.noise:
        x = x + tf.random.stateless_normal(shape, seeds[3], 0.0, 1.0) * per_image(u[14] * spec.noise)
    return tf.clip_by_value(x, 0.0, 1.0) * rng + lo


def _blur_picked(x: Any, taps: Any, picked: Any) -> Any:
    """The batch with the `picked` images ([B] bool) blurred by their taps ([B, 5]) and the others as they were.

    Only the picked ones (a quarter by default) are filtered: bit for bit what blurring the whole batch and
    keeping the picked ones gave, at a quarter of the work (at 300 px that was a quarter of all augmentation).
    """
    import tensorflow as tf

    pick = tf.where(picked)
    t = tf.gather_nd(taps, pick)
    return tf.tensor_scatter_nd_update(x, pick, _blur_axis(_blur_axis(tf.gather_nd(x, pick), t, 1), t, 2))


def _blur_axis(x: Any, taps: Any, axis: int) -> Any:
    """Per-image 5-tap filter along `axis` (1: rows, 2: columns) of a BxHxWxC batch, zero padded."""
    import tensorflow as tf

    pad = [[0, 0], [0, 0], [0, 0], [0, 0]]
    pad[axis] = [2, 2]
    xp = tf.pad(x, pad)
    n = tf.shape(x)[axis]
    out = 0.0
    for k in range(5):
        part = xp[:, k:k + n] if axis == 1 else xp[:, :, k:k + n]
        out = out + part * tf.reshape(taps[:, k], [-1, 1, 1, 1])
    return out
