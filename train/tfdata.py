"""The preprocessing contract (`edgeclf.preprocess`) in TensorFlow, for the training pipeline.

Mirrors `edgeclf.edge.preprocess` step for step: decode to RGB uint8 (alpha dropped, gray replicated,
16-bit reduced to 8), centre crop, bilinear resize without antialiasing (half-pixel centres, as
cv2.INTER_LINEAR), then x * scale + offset.
"""

from __future__ import annotations

from typing import Any

from edgeclf.preprocess import PreprocessSpec


def decode_rgb(data: Any) -> Any:
    """Encoded image bytes (tf.string) -> HxWx3 uint8 RGB tensor."""
    import tensorflow as tf

    # JPEG: the accurate integer DCT is what OpenCV's libjpeg-turbo uses; TF's default (fast) differs by up to 6/255.
    img = tf.cond(
        tf.io.is_jpeg(data),
        lambda: tf.io.decode_jpeg(data, channels=3, dct_method="INTEGER_ACCURATE"),
        lambda: tf.io.decode_image(data, channels=3, dtype=tf.uint8, expand_animations=False),
    )
    img.set_shape([None, None, 3])
    return img


def preprocess_rgb(img: Any, spec: PreprocessSpec) -> Any:
    """HxWx3 uint8 RGB -> spec.height x spec.width x 3 float32 model input."""
    import tensorflow as tf

    if spec.crop == "center":
        shape = tf.shape(img)
        h, w = shape[0], shape[1]
        side = tf.minimum(h, w)
        img = tf.image.crop_to_bounding_box(img, (h - side) // 2, (w - side) // 2, side, side)
    x = tf.image.resize(tf.cast(img, tf.float32), (spec.height, spec.width), method="bilinear", antialias=False)
    return x * spec.scale + spec.offset


def load_and_preprocess(path: Any, spec: PreprocessSpec) -> Any:
    import tensorflow as tf

    return preprocess_rgb(decode_rgb(tf.io.read_file(path)), spec)
