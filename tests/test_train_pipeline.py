"""tf.data pipeline (seeded, resumable), augmentation, architectures and safe model files."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest

from edgeclf.errors import ModelError, UsageError
from edgeclf.preprocess import PreprocessSpec
from edgeclf.train.archs import ARCHS, build_model, transfer_weights
from edgeclf.train.augment import AugmentSpec
from edgeclf.train.modelio import check_keras_file, load_keras
from edgeclf.train.tfdata import eval_dataset, load_and_preprocess, train_dataset

from .conftest import write_color_folders


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> tuple[list[str], list[int]]:
    root = write_color_folders(tmp_path_factory.mktemp("pipe"), n_per_class=5, size=40)
    paths = sorted(str(p) for p in root.glob("*/*.png"))
    return paths, [0 if "/blue/" in p else 1 for p in paths]


def _batches(ds) -> list[tuple[np.ndarray, np.ndarray]]:
    return [(x.numpy(), y.numpy()) for x, y in ds]


def test_same_seed_same_batches_and_resume_sees_the_same_epochs(files) -> None:
    paths, labels = files
    spec = PreprocessSpec(32, 32)
    run = lambda seed, first: _batches(train_dataset(paths, labels, spec, 4, 2, seed, first, 3, AugmentSpec()))  # noqa: E731
    a, b, other = run(5, 0), run(5, 0), run(6, 0)
    assert len(a) == 3 * 3  # ceil(10 / 4) batches per epoch, 3 epochs
    assert all(np.array_equal(x[0], y[0]) and np.array_equal(x[1], y[1]) for x, y in zip(a, b))
    assert not all(np.array_equal(x[0], y[0]) for x, y in zip(a, other))
    assert not np.array_equal(a[0][0], a[3][0])  # epochs differ from each other
    resumed = run(5, 2)  # a run resumed before epoch 3 sees epoch 3's batches
    assert len(resumed) == 3 and all(np.array_equal(x[0], y[0]) for x, y in zip(resumed, a[6:]))


def test_without_augmentation_batches_are_the_preprocessed_files(files) -> None:
    paths, labels = files
    spec = PreprocessSpec(24, 24)
    xs = np.concatenate([x for x, _ in _batches(train_dataset(paths, labels, spec, 4, 2, 0, 0, 1))])
    exact = np.stack([load_and_preprocess(p, spec).numpy() for p in paths])
    # The cache holds the resized images rounded to uint8 (as cv2.resize leaves a frame on the edge).
    ref = np.round(exact * 255.0) / 255.0
    assert np.abs(ref - exact).max() <= 0.5 / 255 + 1e-6
    # Same images, shuffled: match each batch image to a file exactly.
    assert sorted(float(x.sum()) for x in xs) == pytest.approx(sorted(float(r.sum()) for r in ref))
    ev = _batches(eval_dataset(paths, labels, spec, 4, 2))
    assert np.allclose(np.concatenate([x for x, _ in ev]), ref, atol=1e-6)  # evaluation keeps file order
    assert np.array_equal(np.concatenate([y for _, y in ev]), np.array(labels, np.float32))


def test_augmentation_changes_images_within_range(files) -> None:
    import tensorflow as tf

    from edgeclf.train.augment import augment

    x = load_and_preprocess(files[0][0], PreprocessSpec(32, 32))
    outs = [augment(x, tf.constant([1, i], tf.int64), AugmentSpec(), 0.0, 1.0).numpy() for i in range(4)]
    assert all(o.shape == (32, 32, 3) and o.min() >= 0.0 and o.max() <= 1.0 for o in outs)
    assert not np.allclose(outs[0], outs[1])
    same = augment(x, tf.constant([1, 0], tf.int64), AugmentSpec(), 0.0, 1.0).numpy()
    assert np.array_equal(same, outs[0])  # stateless: same seed, same result


@pytest.mark.parametrize("name,n_classes", [(a, 2) for a in ARCHS] + [("edge", 3), ("seed", 4)])
def test_every_arch_outputs_probabilities_without_lambda(name: str, n_classes: int, tmp_path: Path) -> None:
    size = ARCHS[name].min_size
    m = build_model(name, size, n_classes)
    x = np.random.default_rng(0).random((2, size, size, 3), np.float32)
    p = np.asarray(m(x, training=False))
    assert p.shape == (2, 1 if n_classes == 2 else n_classes) and p.min() >= 0 and p.max() <= 1
    if n_classes > 2:
        assert np.allclose(p.sum(axis=1), 1.0, atol=1e-5)
    m.save(tmp_path / "m.keras")
    check_keras_file(tmp_path / "m.keras")
    assert np.allclose(np.asarray(load_keras(tmp_path / "m.keras")(x, training=False)), p, atol=1e-6)


def test_seed_arch_is_the_course_seed() -> None:
    m = build_model("seed", 150, 2)
    kinds = [type(layer).__name__ for layer in m.layers[1:]]
    assert kinds == ["Conv2D", "MaxPooling2D", "Conv2D", "MaxPooling2D", "Flatten", "Dense", "Dense"]
    assert [getattr(layer, "filters", None) for layer in m.layers[1:4:2]] == [64, 64]
    assert m.layers[-2].units == 128 and m.layers[-1].activation.__name__ == "sigmoid"


def test_size_agnostic_weights_move_between_sizes() -> None:
    small, big = build_model("edge", 96, 2), build_model("edge", 300, 2)  # 300: the stem is pooled to trunk scale
    transfer_weights(small, big)
    pools = lambda m: sum(type(layer).__name__ == "MaxPooling2D" for layer in m.layers)  # noqa: E731
    assert pools(big) == pools(small) + 1
    assert all(np.array_equal(a, b) for a, b in zip(small.get_weights(), big.get_weights()))
    with pytest.raises(UsageError, match="layer shapes differ"):
        transfer_weights(build_model("seed", 64, 2), build_model("seed", 128, 2))
    with pytest.raises(UsageError, match="--arch 'resnet' is not known"):
        build_model("resnet", 64, 2)
    with pytest.raises(UsageError, match="--arch course needs inputs of at least 96x96"):
        build_model("course", 64, 2)


def test_h5_and_lambda_models_are_refused(tmp_path: Path) -> None:
    import keras

    (tmp_path / "m.h5").write_bytes(b"\x89HDF\r\n\x1a\n")
    with pytest.raises(ModelError, match=r"HDF5 \(.h5\) models are refused"):
        load_keras(tmp_path / "m.h5")
    inp = keras.Input((4,))
    m = keras.Model(inp, keras.layers.Lambda(lambda t: t * 2)(inp))
    m.save(tmp_path / "lam.keras")
    with pytest.raises(ModelError, match="holds a Lambda layer"):
        load_keras(tmp_path / "lam.keras")
    (tmp_path / "junk.keras").write_bytes(b"not a zip")
    with pytest.raises(ModelError, match="not a valid .keras file"):
        load_keras(tmp_path / "junk.keras")
    assert zipfile.is_zipfile(tmp_path / "lam.keras")



def test_blur_on_the_picked_images_only_equals_blurring_all_then_picking() -> None:
    """augment_batch blurs only the images drawn for it (gather, blur, scatter): bit for bit what blurring the
    whole batch and keeping the drawn ones gave, so the same --seed keeps giving the same augmented pixels."""
    import tensorflow as tf

    from edgeclf.train.augment import _blur_axis, _blur_picked

    rng = np.random.default_rng(3)
    x = tf.constant(rng.normal(0.5, 0.4, (16, 40, 40, 3)).astype(np.float32))
    taps = tf.constant(rng.random((16, 5), dtype=np.float32))
    for picked in (rng.random(16) < 0.25, np.zeros(16, bool), np.ones(16, bool)):
        want = tf.where(tf.reshape(tf.constant(picked), [-1, 1, 1, 1]), _blur_axis(_blur_axis(x, taps, 1), taps, 2), x)
        np.testing.assert_array_equal(_blur_picked(x, taps, tf.constant(picked)).numpy(), want.numpy())
