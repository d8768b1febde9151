"""The preprocessing contract (`edgeclf.preprocess`) in TensorFlow, for the training pipeline.

Mirrors `edgeclf.edge.preprocess` step for step: decode to RGB uint8 (alpha dropped, gray replicated,
16-bit reduced to 8), centre crop, bilinear resize without antialiasing (half-pixel centres, as
cv2.INTER_LINEAR), then x * scale + offset. Training caches the resized images as uint8 (rounded, as
cv2.resize of a uint8 frame leaves them on the edge) and scales whole batches.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

from edgeclf.preprocess import PreprocessSpec

if TYPE_CHECKING:
    from edgeclf.train.augment import AugmentSpec


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


def _framed(img: Any, spec: PreprocessSpec) -> Any:
    """HxWx3 uint8 -> the spec's crop (centre square, letterbox or none), still uint8."""
    import tensorflow as tf

    if spec.crop == "center":
        shape = tf.shape(img)
        h, w = shape[0], shape[1]
        side = tf.minimum(h, w)
        img = tf.image.crop_to_bounding_box(img, (h - side) // 2, (w - side) // 2, side, side)
    elif spec.crop == "letterbox":
        from edgeclf.preprocess import LETTERBOX_FILL

        shape = tf.shape(img)
        h, w = shape[0], shape[1]
        side = tf.maximum(h, w)
        top, left = (side - h) // 2, (side - w) // 2
        img = tf.pad(img, [[top, side - h - top], [left, side - w - left], [0, 0]], constant_values=LETTERBOX_FILL)
    return img


def _resized(img: Any, spec: PreprocessSpec) -> Any:
    import tensorflow as tf

    return tf.image.resize(tf.cast(_framed(img, spec), tf.float32), (spec.height, spec.width), method="bilinear",
                           antialias=False)


def preprocess_rgb(img: Any, spec: PreprocessSpec) -> Any:
    """HxWx3 uint8 RGB -> spec.height x spec.width x 3 float32 model input."""
    return _resized(img, spec) * spec.scale + spec.offset


def resized_uint8(img: Any, spec: PreprocessSpec) -> Any:
    """HxWx3 uint8 RGB -> the resized image rounded to uint8, as the edge's cv2.resize leaves it: what the
    training cache holds (a quarter of float32's memory); `scaled` makes it a model input."""
    import tensorflow as tf

    return tf.cast(tf.clip_by_value(tf.round(_resized(img, spec)), 0.0, 255.0), tf.uint8)


def scaled(x: Any, spec: PreprocessSpec) -> Any:
    """uint8 image(s) of any batch shape -> float32 model input (x * scale + offset)."""
    import tensorflow as tf

    return tf.cast(x, tf.float32) * spec.scale + spec.offset


def load_and_preprocess(path: Any, spec: PreprocessSpec) -> Any:
    import tensorflow as tf

    return preprocess_rgb(decode_rgb(tf.io.read_file(path)), spec)


def cache_bytes(n_files: int, spec: PreprocessSpec) -> int:
    """Memory an in-memory cache of `n_files` decoded, resized uint8 images takes."""
    return n_files * spec.height * spec.width * spec.channels


def _labels_dtype(n_classes: int) -> Any:
    import tensorflow as tf

    return tf.float32 if n_classes == 2 else tf.int32


def _base(files: Sequence[str], labels: Sequence[int], spec: PreprocessSpec, n_classes: int, cache: bool) -> Any:
    """(uint8 image, label) per file, in file order: decoded once into memory (`cache`), else every pass."""
    import tensorflow as tf

    ds = tf.data.Dataset.from_tensor_slices((list(files), tf.constant(list(labels), _labels_dtype(n_classes))))
    ds = ds.map(lambda p, y: (resized_uint8(decode_rgb(tf.io.read_file(p)), spec), y),
                num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.cache() if cache else ds


def eval_dataset(files: Sequence[str], labels: Sequence[int], spec: PreprocessSpec, batch_size: int,
                 n_classes: int, cache: bool = True) -> Any:
    """Held-out data in file order: decode in parallel, cache (uint8), batch, scale the batch, prefetch."""
    import tensorflow as tf

    return (_base(files, labels, spec, n_classes, cache).batch(batch_size)
            .map(lambda x, y: (scaled(x, spec), y), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
            .prefetch(tf.data.AUTOTUNE))


def train_dataset(files: Sequence[str], labels: Sequence[int], spec: PreprocessSpec, batch_size: int,
                  n_classes: int, seed: int, first_epoch: int, epochs: int,
                  augment: "AugmentSpec | None" = None, cache: bool = True) -> Any:
    """Batches for epochs first_epoch..epochs-1, ceil(n / batch_size) per epoch.

    Each epoch's shuffle (and augmentation) is keyed by (seed, epoch): the same seed gives the same
    batches, and a run resumed at epoch k sees exactly the batches an uninterrupted run would have.
    The cache holds uint8 images; scaling and augmentation run on whole batches.
    """
    import tensorflow as tf

    from edgeclf.train.augment import augment_batch

    n = len(files)
    base = _base(files, labels, spec, n_classes, cache)
    lo = spec.offset
    hi = 255.0 * spec.scale + spec.offset
    seed = int(seed)

    steps = steps_per_epoch(n, batch_size)

    def one_epoch(epoch: int) -> Any:
        # Python-int seeds: TensorFlow's seed handling breaks on tensor seeds when the global seed is 0.
        ds = base.shuffle(n, seed=seed * 1_000_003 + epoch, reshuffle_each_iteration=False).batch(batch_size)
        if augment is None:
            return ds.map(lambda x, y: (scaled(x, spec), y), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        key = tf.constant(seed * 10_007 + epoch, tf.int64)
        return ds.enumerate().map(
            lambda i, xy: (augment_batch(scaled(xy[0], spec), tf.stack([key, i]), augment, lo, hi), xy[1]),
            num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)

    epoch_ids = list(range(first_epoch, epochs))
    if not epoch_ids:
        raise ValueError(f"no epochs left to train (first_epoch={first_epoch}, epochs={epochs})")
    choice = tf.data.Dataset.range(len(epoch_ids)).flat_map(lambda k: tf.data.Dataset.from_tensors(k).repeat(steps))
    ds = tf.data.Dataset.choose_from_datasets([one_epoch(e) for e in epoch_ids], choice)
    return ds.prefetch(tf.data.AUTOTUNE)


def steps_per_epoch(n_files: int, batch_size: int) -> int:
    return -(-n_files // batch_size)
