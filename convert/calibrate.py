"""Calibration of each variant: a temperature and an "unknown" threshold, fitted on the TFLite model itself.

Each variant gets its own: int8 outputs are quantized in 1/256 steps and its scores differ from the
float model's, so a temperature fitted on Keras would not fit it. Fitting uses the run's **validation**
split (never the test side) and generated non-class images (`nonclass.py`); the test side, when the run
has one, is only measured: its calibration error before and after and the share of it called unknown.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from edgeclf.bundle import TensorSpec
from edgeclf.calibration import FEATURE_DISTANCE, Calibration, UnknownRule
from edgeclf.metrics import class_probs
from edgeclf.preprocess import PreprocessSpec
from edgeclf.scores import calibrate, choose_unknown_threshold, clip_for, ece, fit_temperature, top_score

from .data import RunData, calibration_sample, labels_of, load_images
from .nonclass import KINDS, generated_nonclass

log = logging.getLogger(__name__)

MAX_LOSS = 0.05  # at most this share of the validation images may fall below the unknown threshold
N_PER_KIND = 30


@dataclass(frozen=True)
class CalibrationData:
    """Per input size: validation images and labels, and the generated non-class images."""

    x_val: np.ndarray
    y_val: np.ndarray
    x_generated: np.ndarray
    # The validation images as a camera sees them (edgeclf.camsim, through the edge's preprocessing): the
    # unknown thresholds count them as known, or a subject that fills half the frame reads as "unknown"
    # (the demo's clip: 47 % of its frames, when the distance threshold was fitted on the stills alone).
    x_val_camera: np.ndarray

    @classmethod
    def load(cls, data: RunData, spec: PreprocessSpec, seed: int = 0) -> "CalibrationData":
        from edgeclf.camsim import CameraSim, frames
        from edgeclf.edge.preprocess import Preprocessor

        x_val = load_images(data.val, spec)
        train_x = load_images(calibration_sample(data.train, N_PER_KIND, seed), spec)
        x_gen, _ = generated_nonclass(spec, train_x, N_PER_KIND, seed)
        pre = Preprocessor(spec)
        sim = CameraSim(seed=seed + 104729)  # not the test figure's frames (seeded by the run's seed)
        cams = [np.array(pre(f.frame), np.float32).reshape(x_val.shape[1:]) for f in frames(list(data.val), sim)]
        x_cam = np.stack(cams) if cams else x_val[:0]
        return cls(x_val, labels_of(data.val), x_gen, x_cam)


@dataclass(frozen=True)
class VariantOutputs:
    """Every output of one converted variant on the calibration images (validation stills, their camera-like
    frames, generated non-class images), by tensor name: run once, read by both fits."""

    val: dict[str, np.ndarray]
    camera: dict[str, np.ndarray]
    generated: dict[str, np.ndarray]

    @classmethod
    def run(cls, model_bytes: bytes, fit: CalibrationData, quiet: bool = True) -> "VariantOutputs":
        from edgeclf.native_output import quiet_native

        from .verify import _interpreter_class, run_outputs

        klass = _interpreter_class()[1]

        def outs(x: np.ndarray) -> dict[str, np.ndarray]:
            if not len(x):
                return {}
            return {name: values for name, (values, _) in run_outputs(klass, model_bytes, x)[0].items()}

        with quiet_native(quiet):
            return cls(outs(fit.x_val), outs(fit.x_val_camera), outs(fit.x_generated))

    @staticmethod
    def pick(got: dict[str, np.ndarray], name: str | None) -> np.ndarray:
        """The output named `name`, or the only one."""
        if name is None:
            (only,) = got.values()
            return only
        return got[name]


def fit_calibration(runs: VariantOutputs, n_classes: int, fit: CalibrationData, out_spec: TensorSpec,
                    test_probs: np.ndarray | None = None, test_y: np.ndarray | None = None,
                    probabilities: str | None = None) -> Calibration:
    """Temperature on the validation split, the unknown threshold on validation + generated images
    (`probabilities`: that output's tensor name when the model has a second output)."""
    clip = clip_for(out_spec.quantized, out_spec.scale)
    val = class_probs(runs.pick(runs.val, probabilities), n_classes)
    gen = class_probs(runs.pick(runs.generated, probabilities), n_classes)
    t = fit_temperature(val, fit.y_val, clip)
    val_c, gen_c = calibrate(val, t, clip), calibrate(gen, t, clip)
    known_c = val_c
    if runs.camera:
        cam = class_probs(runs.pick(runs.camera, probabilities), n_classes)
        known_c = np.concatenate([val_c, calibrate(cam, t, clip)])
    threshold = choose_unknown_threshold(top_score(known_c), top_score(gen_c), MAX_LOSS)
    test: dict[str, float] = {}
    test_unknown = None
    if test_probs is not None and test_y is not None and len(test_y):
        raw = class_probs(test_probs, n_classes)
        cal = calibrate(raw, t, clip)
        test = {"test_ece_before": ece(raw, test_y), "test_ece_after": ece(cal, test_y)}
        test_unknown = round(float(np.mean(top_score(cal) < threshold)), 4)
    rule = UnknownRule(
        threshold=threshold, max_loss=MAX_LOSS,
        fitted_on=f"validation split ({len(fit.y_val)} images, also as camera-like frames) and "
                  f"{len(fit.x_generated)} generated non-class images ({', '.join(KINDS)})",
        validation_unknown=round(float(np.mean(top_score(val_c) < threshold)), 4),
        generated_unknown=round(float(np.mean(top_score(gen_c) < threshold)), 4), test_unknown=test_unknown)
    cal = Calibration(temperature=t, clip=clip, fitted_on=f"validation split ({len(fit.y_val)} images), this variant",
                      n=len(fit.y_val), ece_before=ece(val, fit.y_val), ece_after=ece(val_c, fit.y_val),
                      unknown=rule, **test)
    log.info("calibration: temperature %.3f, validation ECE %.3f -> %.3f; unknown below %.3f (validation %.1f%%, "
             "generated %.1f%%)", t, cal.ece_before, cal.ece_after, threshold, 100 * (rule.validation_unknown or 0),
             100 * (rule.generated_unknown or 0))
    return cal


def _distances(model_bytes: bytes, x: np.ndarray, output: str, quiet: bool) -> np.ndarray:
    """The distance output on every image, rounded to float32 as the edge holds it."""
    from edgeclf.native_output import quiet_native

    from .verify import _interpreter_class, run_outputs

    with quiet_native(quiet):
        outs, _ = run_outputs(_interpreter_class()[1], model_bytes, x)
    return _nearest(outs[output][0])


def _nearest(distances: np.ndarray) -> np.ndarray:
    """Each image's distance to the nearest class, rounded to float32 as the edge holds it."""
    return distances.min(axis=1).astype(np.float32).astype(np.float64)


def fit_feature_unknown(model_bytes: bytes, runs: VariantOutputs, fit: CalibrationData, probabilities: str,
                        distance: str, out_spec: TensorSpec, test_x: np.ndarray | None = None,
                        quiet: bool = True) -> UnknownRule:
    """The threshold on the feature-distance output: chosen as the margin's is (at most MAX_LOSS of validation
    above it, best separating the generated non-class images), on this variant's own outputs."""
    known = [runs.val[distance]] + ([runs.camera[distance]] if runs.camera else [])
    val = _nearest(np.concatenate(known))
    gen = _nearest(runs.generated[distance])
    threshold = -choose_unknown_threshold(-val, -gen, MAX_LOSS)  # unknown above it: the same search, negated
    test = None
    if test_x is not None and len(test_x):
        test = round(float(np.mean(_distances(model_bytes, test_x, distance, quiet) > threshold)), 4)
    rule = UnknownRule(
        threshold=threshold, score=FEATURE_DISTANCE, max_loss=MAX_LOSS,
        fitted_on=f"validation split ({len(fit.y_val)} images, also as camera-like frames) and "
                  f"{len(fit.x_generated)} generated non-class images ({', '.join(KINDS)}); class means and covariance on the training split",
        validation_unknown=round(float(np.mean(val > threshold)), 4),
        generated_unknown=round(float(np.mean(gen > threshold)), 4), test_unknown=test,
        output=distance, probabilities_output=probabilities, output_dtype=out_spec.dtype,
        output_scale=out_spec.scale if out_spec.quantized else None,
        output_zero_point=out_spec.zero_point if out_spec.quantized else None)
    log.info("feature distance: unknown above %.4g (validation %.1f%%, generated %.1f%%)", threshold,
             100 * (rule.validation_unknown or 0), 100 * (rule.generated_unknown or 0))
    return rule
