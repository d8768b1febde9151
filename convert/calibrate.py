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
from edgeclf.calibration import Calibration, UnknownRule
from edgeclf.metrics import class_probs
from edgeclf.preprocess import PreprocessSpec
from edgeclf.scores import calibrate, choose_unknown_threshold, clip_for, ece, fit_temperature, top_score

from .data import RunData, calibration_sample, labels_of, load_images
from .nonclass import KINDS, generated_nonclass
from .verify import tflite_probs

log = logging.getLogger(__name__)

MAX_LOSS = 0.05  # at most this share of the validation images may fall below the unknown threshold
N_PER_KIND = 30


@dataclass(frozen=True)
class CalibrationData:
    """Per input size: validation images and labels, and the generated non-class images."""

    x_val: np.ndarray
    y_val: np.ndarray
    x_generated: np.ndarray

    @classmethod
    def load(cls, data: RunData, spec: PreprocessSpec, seed: int = 0) -> "CalibrationData":
        x_val = load_images(data.val, spec)
        train_x = load_images(calibration_sample(data.train, N_PER_KIND, seed), spec)
        x_gen, _ = generated_nonclass(spec, train_x, N_PER_KIND, seed)
        return cls(x_val, labels_of(data.val), x_gen)


def fit_calibration(model_bytes: bytes, n_classes: int, fit: CalibrationData, out_spec: TensorSpec,
                    test_probs: np.ndarray | None = None, test_y: np.ndarray | None = None,
                    quiet: bool = True) -> Calibration:
    """Temperature on the validation split, the unknown threshold on validation + generated images."""
    clip = clip_for(out_spec.quantized, out_spec.scale)
    val = class_probs(tflite_probs(model_bytes, fit.x_val, quiet)[0], n_classes)
    gen = class_probs(tflite_probs(model_bytes, fit.x_generated, quiet)[0], n_classes)
    t = fit_temperature(val, fit.y_val, clip)
    val_c, gen_c = calibrate(val, t, clip), calibrate(gen, t, clip)
    threshold = choose_unknown_threshold(top_score(val_c), top_score(gen_c), MAX_LOSS)
    test: dict[str, float] = {}
    test_unknown = None
    if test_probs is not None and test_y is not None and len(test_y):
        raw = class_probs(test_probs, n_classes)
        cal = calibrate(raw, t, clip)
        test = {"test_ece_before": ece(raw, test_y), "test_ece_after": ece(cal, test_y)}
        test_unknown = round(float(np.mean(top_score(cal) < threshold)), 4)
    rule = UnknownRule(
        threshold=threshold, max_loss=MAX_LOSS,
        fitted_on=f"validation split ({len(fit.y_val)} images) and {len(fit.x_generated)} generated non-class "
                  f"images ({', '.join(KINDS)})",
        validation_unknown=round(float(np.mean(top_score(val_c) < threshold)), 4),
        generated_unknown=round(float(np.mean(top_score(gen_c) < threshold)), 4), test_unknown=test_unknown)
    cal = Calibration(temperature=t, clip=clip, fitted_on=f"validation split ({len(fit.y_val)} images), this variant",
                      n=len(fit.y_val), ece_before=ece(val, fit.y_val), ece_after=ece(val_c, fit.y_val),
                      unknown=rule, **test)
    log.info("calibration: temperature %.3f, validation ECE %.3f -> %.3f; unknown below %.3f (validation %.1f%%, "
             "generated %.1f%%)", t, cal.ece_before, cal.ece_after, threshold, 100 * (rule.validation_unknown or 0),
             100 * (rule.generated_unknown or 0))
    return cal
