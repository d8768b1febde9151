"""The feature-distance output: how far an image's penultimate features lie from every class seen in training.

`edgeclf convert` fits, on the run's **training** split, the mean of the pooled features (the head Dense's
input: global-average-pooled maps in the GAP archs and the pretrained backbones, the Dense-128 activations
in `seed`/`course`) of each class and one shared covariance, shrunk towards a multiple of the identity
(Ledoit-Wolf: a training split has fewer images than a backbone has features). The model gets a second
output: the squared Mahalanobis distance to **each** class mean (the edge uses the nearest), divided by the
number of dimensions (about 1 for a typical training image), built from standard Keras layers only, so that every
quantization kind converts it and tflite-runtime 2.14 loads it:

    features -> Dense(K*r, kernel [W ... W], bias [-W^T mu_1 ... -W^T mu_K])   W^T(f - mu_k), per class
             -> Multiply (z_k * z_k) -> Dense(K, block of 1/r, no bias)        distance to each class

The output holds the K distances; the edge (and `FeatureStats.distance`) takes the smallest (numpy, K
values). Clipping each whitened difference before squaring (ReLU6 fused into the Dense, or a ReLU with a
maximum) was tried, to keep int8 ranges narrow: it made an int8 mobilenetv3-small variant abort in
ai-edge-litert's XNNPACK delegate on allocate_tensors ("double free"), so it is not here. The int8
calibration images include generated non-class images, so the output's range reaches past the threshold.
W whitens the shrunk covariance along its r = min(d, MAX_DIMS) **least** varying directions (all of them
for the 128-feature edge nets; of the 1280 pooled features of a backbone, 128, so the extra weights stay
small). The least varying, because that is where images of other classes leave the training classes
(measured on efficientnet-lite0's 1280 features at 150 px, AUROC test vs clothing photos, Keras: all 1280
directions 0.962; the 128 least varying 0.956; 128 random 0.959; the 128 most varying 0.918 and only 51 %
caught at 5 % validation loss; as Kamoi and Kobayashi (2020) found for the Mahalanobis score).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from edgeclf.errors import ModelError

MAX_DIMS = 128
PROBS_NAME, DISTANCE_NAME = "probabilities", "feature_distance"


@dataclass(frozen=True)
class FeatureStats:
    """Class means (K, d), whitening (d, r), the shrinkage used and how many training images fitted them."""

    means: np.ndarray
    whiten: np.ndarray
    shrinkage: float
    n: int

    @property
    def dims(self) -> int:
        return int(self.whiten.shape[1])

    def distance(self, features: np.ndarray) -> np.ndarray:
        """The smallest of the model's distance output, in numpy (float64): min over classes of the mean over
        dimensions of (W^T(f - mu_k))^2."""
        f = np.asarray(features, np.float64) @ self.whiten
        c = self.means @ self.whiten
        return np.min([np.mean((f - ck) ** 2, axis=1) for ck in c], axis=0)


def ledoit_wolf(centred: np.ndarray) -> tuple[np.ndarray, float]:
    """Ledoit and Wolf's (2004) shrunk covariance of centred rows: (covariance, shrinkage in 0..1)."""
    x = np.asarray(centred, np.float64)
    n, d = x.shape
    s = x.T @ x / n
    m = float(np.trace(s)) / d
    d2 = float(np.sum((s - m * np.eye(d)) ** 2))
    sq = np.sum(x ** 2, axis=1)
    b2 = float(np.sum(sq ** 2) - 2 * np.einsum("ij,jk,ik->", x, s, x) + n * np.sum(s ** 2)) / n ** 2
    shrink = 1.0 if d2 <= 0 else min(max(b2 / d2, 0.0), 1.0)
    return shrink * m * np.eye(d) + (1.0 - shrink) * s, shrink


def fit_stats(features: np.ndarray, y: np.ndarray, n_classes: int) -> FeatureStats:
    """Class means and the whitening of their shared, shrunk covariance, from training features."""
    f = np.asarray(features, np.float64).reshape(len(features), -1)
    y = np.asarray(y)
    missing = [k for k in range(n_classes) if not np.any(y == k)]
    if missing:
        raise ModelError(f"feature distance: class {missing[0]} has no training image; cannot fit its mean")
    means = np.stack([f[y == k].mean(0) for k in range(n_classes)])
    cov, shrink = ledoit_wolf(f - means[y])
    lam, vec = np.linalg.eigh(cov)
    keep = np.argsort(lam)[:min(f.shape[1], MAX_DIMS)]  # the least varying directions (module docstring)
    lam = np.maximum(lam[keep], 1e-12 * max(float(lam.max()), 1e-30))
    return FeatureStats(means, vec[:, keep] / np.sqrt(lam), round(shrink, 4), len(f))


def head_input(model: Any) -> Any:
    """The pooled features: the input of the model's last layer, which must be its Dense head."""
    import keras

    last = model.layers[-1]
    if not isinstance(last, keras.layers.Dense):
        raise ModelError(f"feature distance: the model ends in {type(last).__name__} {last.name!r}, not the Dense head "
                         "edgeclf trains; convert with --no-feature-distance")
    return last.input


def feature_model(model: Any) -> Any:
    """(features, probabilities) of the trained model, one graph."""
    import keras

    # Named, so that two conversions in one process give the same tensor names (Keras numbers unnamed models).
    return keras.Model(model.inputs[0], [head_input(model), model.outputs[0]], name="features_and_probabilities")


def distance_layers(features: Any, stats: FeatureStats) -> Any:
    """The distance output on a features tensor, from standard layers with fixed weights (module docstring)."""
    import keras

    k, r = stats.means.shape[0], stats.dims
    zk = keras.layers.Dense(k * r, name="feature_offsets", trainable=False)
    sq = keras.layers.Dense(k, use_bias=False, name="feature_distances", trainable=False)
    h = zk(features)
    h = sq(keras.layers.Multiply(name="feature_squares")([h, h]))
    zk.set_weights([np.tile(stats.whiten, (1, k)).astype(np.float32),
                    -(stats.means @ stats.whiten).astype(np.float32).reshape(-1)])
    sq.set_weights([np.kron(np.eye(k), np.full((r, 1), 1.0 / r)).astype(np.float32)])
    return h  # one distance per class; the edge takes the smallest (module docstring)


def with_distance(model: Any, stats: FeatureStats, head: Any) -> Any:
    """The model to convert: [feature distance, probabilities (after `head`, e.g. the two-class output)].

    In this order, because the TFLite converter lists a SavedModel's outputs the other way round (measured,
    TensorFlow 2.21): the probabilities come first in the .tflite, where MediaPipe's classifier reads its
    first head. Nothing relies on it: `identify_outputs` names each TFLite output by its values."""
    import keras

    shape = model.inputs[0].shape
    inp = keras.Input(shape=shape[1:], batch_size=shape[0], name="image")
    f, p = feature_model(model)(inp, training=False)
    return keras.Model(inp, [distance_layers(f, stats), head(p)], name=f"{model.name}_with_distance")


def training_features(model: Any, x: np.ndarray, batch: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """(features, probabilities) of the trained model for preprocessed images."""
    fm = feature_model(model)
    out = [fm(x[i:i + batch], training=False) for i in range(0, len(x), batch)]
    f = np.concatenate([np.asarray(a) for a, _ in out]).reshape(len(x), -1)
    p = np.concatenate([np.asarray(b) for _, b in out]).reshape(len(x), -1)
    return f, p


def fit_on_items(model: Any, items: Any, spec: Any, n_classes: int, chunk: int = 128) -> FeatureStats:
    """`fit_stats` on a split's images, loaded a chunk at a time (a 300 px split does not fit in memory)."""
    from .data import labels_of, load_images

    feats = [training_features(model, load_images(items[i:i + chunk], spec))[0] for i in range(0, len(items), chunk)]
    return fit_stats(np.concatenate(feats), labels_of(items), n_classes)


def identify_outputs(model_bytes: bytes, keras_model: Any, x: np.ndarray, quiet: bool = True) -> tuple[str, str]:
    """(probabilities, distance): the TFLite output tensor names, found by comparing each output's values with
    the Keras model's probabilities on the same images (never by shape: a sigmoid and the distance are both
    one value). The probabilities must come first (see `with_distance`)."""
    from edgeclf.native_output import quiet_native

    from .verify import _interpreter_class, run_outputs

    with quiet_native(quiet):
        outs, _ = run_outputs(_interpreter_class()[1], model_bytes, x)
        probs = np.asarray(keras_model(x, training=False)[1]).reshape(len(x), -1)
    if len(outs) != 2:
        raise ModelError(f"feature distance: the converted model has {len(outs)} outputs, expected 2")
    names = list(outs)

    def err(name: str, ref: np.ndarray) -> float:
        got = outs[name][0]
        if got.shape != ref.shape:
            return np.inf
        return float(np.mean(np.abs(got - ref)) / (np.mean(np.abs(ref)) + 1e-6))

    # By the probabilities alone: the accuracy gate holds them close to Keras in every kind, while an int8
    # distance can be coarse (its features' int8 range also covers the non-class calibration images).
    first, second = err(names[0], probs), err(names[1], probs)
    if not min(first, second) < 0.5 * max(first, second):
        raise ModelError(f"feature distance: cannot tell the converted model's outputs apart by their values (relative "
                         f"errors {first:.3g} and {second:.3g} against the probabilities); convert with "
                         "--no-feature-distance and report this")
    if second < first:  # MediaPipe's classifier and the metadata's labels go with the first output
        raise ModelError("feature distance: the converter put the distance before the probabilities; MediaPipe "
                         "would read it as the classes' scores; convert with --no-feature-distance and report this")
    return names[0], names[1]


DISTANCE_DESCRIPTION = ("Squared Mahalanobis distance of the penultimate features to each training class mean, "
                        "per feature dimension, in label order (about 1 for a training image; edgeclf takes the "
                        "smallest and answers unknown above the manifest's calibration.feature_unknown.threshold). "
                        "Not class scores.")


def output_spec(model_bytes: bytes, name: str) -> Any:
    """The TensorSpec (dtype, quantization) of the output tensor called `name`."""
    from .verify import _interpreter_class, _spec

    it = _interpreter_class()[1](model_content=model_bytes)
    (detail,) = [o for o in it.get_output_details() if o["name"] == name]
    return _spec(detail)


def loads_in_child(model_bytes: bytes, name: str) -> None:
    """Build, allocate and invoke the model once in a child process on ai-edge-litert (the edge's own probe),
    or raise ModelError: an int8 efficientnet-lite0 at 32 px with this output aborted inside its XNNPACK
    delegate ("double free" on allocate_tensors; the same net at 150 px loads), so no variant is run in
    process before a child has."""
    import hashlib

    from edgeclf.edge.runtime import find_runtime, probe_model

    probe_model(model_bytes, hashlib.sha256(model_bytes).hexdigest(), find_runtime("ai-edge-litert"), name)
