"""The manifest's `calibration` record: a temperature fitted by `edgeclf convert`, and the "unknown" rule.

A bundle outputs probabilities (one sigmoid for 2 classes, a softmax otherwise). The edge recovers logits
from them (`log(p / (1 - p))` or `log p`, with p clipped to [clip, 1 - clip]), divides by `temperature` and
turns them back into probabilities (`edgeclf.scores`). Below `unknown.threshold` of the calibrated
top-class probability, `camera` and `classify` answer "unknown" (for one sigmoid that is a band around
0.5: |logit / T| < logit(threshold)). What was measured when they were fitted is stored beside them.

Standard library only: the Pi reads this with the manifest. A manifest without the record (schema
version 1, or a bundle converted without calibration) behaves as before: scores as the model gives them,
no "unknown".
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from .contracts import field_fraction, present_fields
from .errors import BundleError
from .preprocess import field_int, field_mapping, field_number, field_str

METHODS = ("temperature",)
UNKNOWN_SCORES = ("calibrated-max-prob", "feature-distance")
FEATURE_DISTANCE = "feature-distance"
OUTPUT_DTYPES = ("float32", "uint8", "int8")


@dataclass(frozen=True)
class UnknownRule:
    """Below `threshold` (calibrated probability of the top class) the answer is "unknown"; for the score
    "feature-distance", above `threshold` of the model's second output (`output`: its TFLite tensor name,
    `probabilities_output` the first's; `output_dtype/scale/zero_point` its quantization), the squared
    Mahalanobis distance of the penultimate features to the nearest class mean (`edgeclf.convert.features`).

    Chosen on the validation split and on generated non-class images (`fitted_on` says which and how many);
    the fractions each side put below it are kept, and the test side's when the run has one.
    """

    threshold: float
    score: str = "calibrated-max-prob"
    max_loss: float = 0.05  # the most of the validation images the threshold may call unknown
    fitted_on: str = ""
    validation_unknown: float | None = None  # fraction of validation images below the threshold
    generated_unknown: float | None = None  # fraction of the generated non-class images below it
    test_unknown: float | None = None  # fraction of the test images below it (recall they lose)
    output: str | None = None  # feature-distance: the distance output's tensor name, and its quantization
    probabilities_output: str | None = None
    output_dtype: str | None = None
    output_scale: float | None = None
    output_zero_point: int | None = None

    def __post_init__(self) -> None:
        if self.score not in UNKNOWN_SCORES:
            raise BundleError(f"calibration.unknown.score {self.score!r} is not supported; expected one of "
                              f"{UNKNOWN_SCORES}")
        if self.score == FEATURE_DISTANCE:
            if not (isinstance(self.threshold, (int, float)) and math.isfinite(self.threshold) and self.threshold > 0):
                raise BundleError(f"calibration.feature_unknown.threshold {self.threshold!r}: expected a positive "
                                  "distance")
            if not self.output or not self.probabilities_output or self.output_dtype not in OUTPUT_DTYPES:
                raise BundleError("calibration.feature_unknown: needs output, probabilities_output (tensor names) and "
                                  f"output_dtype in {OUTPUT_DTYPES}; re-convert")
        elif not (isinstance(self.threshold, (int, float)) and 0.0 <= self.threshold <= 1.0):
            raise BundleError(f"calibration.unknown.threshold {self.threshold!r}: expected a probability in 0..1")

    @property
    def by_distance(self) -> bool:
        return self.score == FEATURE_DISTANCE

    def to_dict(self) -> dict[str, Any]:
        return present_fields(self)

    @classmethod
    def from_dict(cls, value: Any, where: str = "calibration.unknown") -> "UnknownRule":
        d = field_mapping(value, where)
        if "threshold" not in d:
            raise BundleError(f"{where}: missing key 'threshold'")
        score = field_str(d["score"], f"{where}.score", UNKNOWN_SCORES) if d.get("score") is not None else None
        got: dict[str, Any] = {"threshold": field_number(d["threshold"], f"{where}.threshold", positive=True)
                               if score == FEATURE_DISTANCE else field_fraction(d["threshold"], f"{where}.threshold")}
        if score is not None:
            got["score"] = score
        for k in ("output", "probabilities_output", "output_dtype"):
            if d.get(k) is not None:
                got[k] = field_str(d[k], f"{where}.{k}")
        if d.get("output_scale") is not None:
            got["output_scale"] = field_number(d["output_scale"], f"{where}.output_scale")
        if d.get("output_zero_point") is not None:
            got["output_zero_point"] = field_int(d["output_zero_point"], f"{where}.output_zero_point", -128)
        for k in ("max_loss", "validation_unknown", "generated_unknown", "test_unknown"):
            if d.get(k) is not None:
                got[k] = field_fraction(d[k], f"{where}.{k}")
        if d.get("fitted_on") is not None:
            got["fitted_on"] = field_str(d["fitted_on"], f"{where}.fitted_on")
        return cls(**got)


@dataclass(frozen=True)
class Calibration:
    """Temperature scaling of the bundle's outputs, fitted on the validation split through this variant."""

    temperature: float
    clip: float = 1e-6  # probabilities are clipped to [clip, 1 - clip] before logits are taken
    method: str = "temperature"
    fitted_on: str = ""
    n: int | None = None
    ece_before: float | None = None  # validation, before and after
    ece_after: float | None = None
    test_ece_before: float | None = None  # the run's test side, before and after (not used for fitting)
    test_ece_after: float | None = None
    unknown: UnknownRule | None = None
    feature_unknown: UnknownRule | None = None  # score "feature-distance": the model's second output

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise BundleError(f"calibration.method {self.method!r} is not supported; expected one of {METHODS}")
        t = self.temperature
        if not (isinstance(t, (int, float)) and math.isfinite(t) and 0.01 <= t <= 100.0):
            raise BundleError(f"calibration.temperature {t!r}: expected a number between 0.01 and 100")
        if not (isinstance(self.clip, (int, float)) and 0.0 < self.clip < 0.5):
            raise BundleError(f"calibration.clip {self.clip!r}: expected a probability between 0 and 0.5")

    def to_dict(self) -> dict[str, Any]:
        d = present_fields(self)
        if self.unknown is not None:
            d["unknown"] = self.unknown.to_dict()
        if self.feature_unknown is not None:
            d["feature_unknown"] = self.feature_unknown.to_dict()
        return d

    @classmethod
    def from_dict(cls, value: Any, where: str = "calibration") -> "Calibration":
        d = field_mapping(value, where)
        if "temperature" not in d:
            raise BundleError(f"{where}: missing key 'temperature'")
        got: dict[str, Any] = {"temperature": field_number(d["temperature"], f"{where}.temperature", positive=True)}
        if d.get("clip") is not None:
            got["clip"] = field_number(d["clip"], f"{where}.clip", positive=True)
        for k in ("method", "fitted_on"):
            if d.get(k) is not None:
                got[k] = field_str(d[k], f"{where}.{k}")
        if d.get("n") is not None:
            got["n"] = field_int(d["n"], f"{where}.n", 0)
        for k in ("ece_before", "ece_after", "test_ece_before", "test_ece_after"):
            if d.get(k) is not None:
                got[k] = field_fraction(d[k], f"{where}.{k}")
        if d.get("unknown") is not None:
            got["unknown"] = UnknownRule.from_dict(d["unknown"], f"{where}.unknown")
        if d.get("feature_unknown") is not None:
            got["feature_unknown"] = UnknownRule.from_dict(d["feature_unknown"], f"{where}.feature_unknown")
            if not got["feature_unknown"].by_distance:
                raise BundleError(f"{where}.feature_unknown.score: expected {FEATURE_DISTANCE!r}")
        return cls(**got)
