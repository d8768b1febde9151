"""`convert_run`: a training run -> one verified bundle per (input size x quantization kind).

Order of work: every cheap check first (options, run files, output folder, model files, data), so
that a mistake is reported before minutes of conversion; then per size: load the Keras model, its
held-out images and scores, convert each kind, check it on a real interpreter, and write the bundle
atomically if it passes the accuracy gate. `variants.json` and the plot come last.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from edgeclf.bundle import Manifest
from edgeclf.contracts import BundleMetrics, Interval, Source
from edgeclf.errors import ModelError, UsageError
from edgeclf.progress import Progress
from edgeclf.rundir import RunDir, RunInfo

from .calibrate import CalibrationData, VariantOutputs, fit_calibration, fit_feature_unknown
from .data import RunData, calibration_sample, labels_of, load_images, resolve_run_data
from .binary_output import DEFAULT_BINARY_OUTPUT, binary_head, check_binary_output, with_binary_output
from .export import check_keras_file, convert_keras, load_keras
from .features import (DISTANCE_DESCRIPTION, fit_on_items, identify_outputs, loads_in_child, output_spec as _output_spec,
                       with_distance)
from .metadata import add_metadata, check_writer, model_info, with_fitted_temperature
from .outdir import check_writable, locked
from .plot import plot_variants
from .quantize import QuantizationKind
from .report import REJECTED, VariantResult, judge, variant_name, write_variants_json
from .samples import write_with_samples
from .verify import compare, keras_probs, runtime_report, tflite_probs

log = logging.getLogger(__name__)

RUNTIME_CHOICES = ("ai-edge-litert", "tflite-runtime")
VARIANTS_FILE = "variants.json"
PLOT_FILE = "variants.png"

# progress(what, done, total) (edgeclf.progress): called before each variant and once at the end.


@dataclass(frozen=True)
class ConvertConfig:
    """What to convert and how strictly to check it.

    kinds: quantization kinds (float32 when empty); sizes: input sizes (the run's when empty);
    data: the run's data folder if it moved; max_drop: allowed accuracy loss vs Keras, percentage points
    (negative demands a gain: a way to watch the gate reject);
    allow_drop: keep (and exit 0 on) variants over max_drop; out: bundles folder (default RUN/bundles);
    runtime: the runtime the bundles are meant for (tflite-runtime: say which variants it cannot load);
    quiet: hide the converter's own logs; metadata: write standard TFLite metadata into every variant
    (edgeclf.convert.metadata); binary_output: a binary model's output, "two-class" or "sigmoid"
    (edgeclf.convert.binary_output); feature_distance: add the second output, the distance of the penultimate
    features to the training classes, and an "unknown" threshold on it (edgeclf.convert.features).
    """

    kinds: tuple[QuantizationKind, ...] = (QuantizationKind.for_float32(),)
    sizes: tuple[int, ...] = ()
    data: Path | None = None
    max_drop: float = 1.0
    allow_drop: bool = False
    out: Path | None = None
    runtime: str = "ai-edge-litert"
    quiet: bool = True
    metadata: bool = True
    binary_output: str = DEFAULT_BINARY_OUTPUT
    feature_distance: bool = True

    def __post_init__(self) -> None:
        if not self.kinds:
            raise UsageError("no quantization kind given; use --quantize float32|float16|dynamic|int8")
        if not -100 <= self.max_drop <= 100:
            raise UsageError(f"--max-drop {self.max_drop} must be between -100 and 100 percentage points")
        if self.runtime not in RUNTIME_CHOICES:
            raise UsageError(f"--runtime {self.runtime!r} is not supported; "
                             f"expected one of {', '.join(RUNTIME_CHOICES)}")
        check_binary_output(self.binary_output)
        if any(s <= 0 for s in self.sizes):
            raise UsageError(f"--size {min(self.sizes)} must be a positive input size")


@dataclass(frozen=True)
class ConvertResult:
    results: tuple[VariantResult, ...]
    out: Path
    variants_json: Path
    plot: Path | None

    @property
    def rejected(self) -> tuple[VariantResult, ...]:
        return tuple(r for r in self.results if r.rejected)


def _sizes(info: RunInfo, asked: Sequence[int], run: Path) -> list[int]:
    have = sorted(info.models, reverse=True)
    if not asked:
        return have
    missing = [s for s in asked if s not in info.models]
    if missing:
        raise UsageError(f"--size {missing[0]}: the run {run} has no model at that size; "
                         f"it has {', '.join(map(str, have))}")
    return list(dict.fromkeys(asked))


def convert_run(run_dir: str | Path, config: ConvertConfig, progress: Progress | None = None) -> ConvertResult:
    """Convert, verify and write every variant of a run; see the module docstring for the order."""
    run = RunDir(run_dir)
    info, split = run.read_info(), run.read_split()
    sizes = _sizes(info, config.sizes, run.path)
    out = Path(config.out) if config.out is not None else run.bundles
    models = {s: run.path / info.models[s].file for s in sizes}
    for path in models.values():
        check_keras_file(path)
    need = sum(p.stat().st_size for p in models.values()) * len(config.kinds) + 2**20
    if config.metadata:  # before check_writable, which makes the folder
        check_writer()
    check_writable(out, "--out" if config.out is not None else "bundles folder", need)
    data = resolve_run_data(run, info, split, config.data)
    total = len(sizes) * len(config.kinds)
    results: list[VariantResult] = []
    with locked(out):
        for size in sizes:
            results.extend(_convert_size(run, info, size, models[size], data, config, out, progress,
                                         len(results), total))
        if progress:
            progress("writing variants.json and the plot", total, total)
        variants_json = out / VARIANTS_FILE
        write_variants_json(variants_json, results, run.path.resolve(), config.max_drop)
        plot = plot_variants(results, out / PLOT_FILE, f"{run.path.name}: {info.arch}, variants vs Keras")
    return ConvertResult(tuple(results), out, variants_json, plot)


def _convert_size(run: RunDir, info: RunInfo, size: int, model_path: Path, data: RunData, config: ConvertConfig,
                  out: Path, progress: Progress | None, done: int, total: int) -> list[VariantResult]:
    spec = info.models[size].preprocess
    if progress:
        progress(f"{size}: loading the Keras model and held-out images", done, total)
    trained = load_keras(model_path, config.quiet)
    model = with_binary_output(trained, info.task, config.binary_output)
    x_val = load_images(data.check, spec)  # the test side (validation for runs made before it existed)
    y_val = labels_of(data.check)
    reference = keras_probs(model, x_val, quiet=config.quiet)
    fit = CalibrationData.load(data, spec)  # validation + generated non-class images, for each variant's calibration
    representative = None
    if any(k.needs_data for k in config.kinds):
        n = max(k.calibration for k in config.kinds if k.needs_data)
        calib = load_images(calibration_sample(data.train, n), spec)
        if config.feature_distance:  # the distance output's int8 range must reach past the unknown threshold
            calib = np.concatenate([calib, fit.x_generated])
        log.info("%d: calibrating int8 on %d training images", size, len(calib))

        def representative():  # noqa: E306 - a fresh generator per conversion, as the converter expects
            for i in range(len(calib)):
                yield [calib[i:i + 1]]

    results = []
    kinds = tuple(config.kinds)
    exported = model
    if config.feature_distance:
        if progress:
            progress(f"{size}: class means and covariance of the training features", done, total)
        exported = with_distance(trained, fit_on_items(trained, data.train, spec, len(info.labels)),
                                 binary_head(info.task, config.binary_output))
    if progress:
        progress(f"{variant_name(size, kinds[0])}: converting", done, total)
    for i, (kind, model_bytes) in enumerate(convert_keras(exported, size, kinds, representative, config.quiet)):
        name = variant_name(size, kind)
        raw, meta = model_bytes, model_info(info.labels, info.task, config.binary_output, spec, info.arch, name)
        outputs = None
        if config.feature_distance:
            try:  # in a child first: a native abort must not take the converter down (docs/unknown.md)
                loads_in_child(model_bytes, name)
                outputs = identify_outputs(model_bytes, exported, x_val[:8], config.quiet)
                meta = replace(meta, feature_output=DISTANCE_DESCRIPTION)
            except ModelError as e:
                log.warning("%s: converted without the feature-distance output (%s)", name, e)
                ((_, model_bytes),) = convert_keras(model, size, (kind,), representative, config.quiet)
                raw = model_bytes
        if config.metadata:  # before every check, so that the checks and the sha256 cover the file as written
            model_bytes = add_metadata(raw, meta)
        if progress:
            progress(f"{name}: checking on the held-out images", done + i, total)
        probs, in_spec, out_spec, interpreter = tflite_probs(model_bytes, x_val, config.quiet,
                                                             outputs[0] if outputs else None)
        metrics = compare(probs, reference, y_val, info.task)
        runtimes = runtime_report(model_bytes, interpreter, x_val[:1], config.quiet)
        status = judge(metrics, config.max_drop, config.allow_drop)
        test = _test_interval(probs, y_val, data, info)
        result = VariantResult(size, kind, len(model_bytes), metrics, runtimes, status, in_spec, out_spec,
                               test=test.get("test", {}))
        if status != REJECTED:
            runs = VariantOutputs.run(model_bytes, fit, config.quiet)  # once, for both fits
            cal = fit_calibration(runs, len(info.labels), fit, out_spec, probs if data.test else None,
                                  y_val if data.test else None, outputs[0] if outputs else None)
            if outputs is not None:
                cal = replace(cal, feature_unknown=fit_feature_unknown(
                    model_bytes, runs, fit, *outputs, _output_spec(model_bytes, outputs[1]),
                    x_val if data.test else None, config.quiet))
            if config.metadata and info.task == "binary":  # the fitted temperature goes into the metadata too
                model_bytes = with_fitted_temperature(raw, meta, cal.temperature, x_val, probs, config.quiet,
                                                      outputs[0] if outputs else None)
                result = replace(result, size_bytes=len(model_bytes),
                                 runtimes=runtime_report(model_bytes, interpreter, x_val[:1], config.quiet))
            manifest = write_with_samples(data.check, out / name, model_bytes,
                                    replace(_manifest(run, info, size, kind, result, test, config.binary_output), calibration=cal))
            result = replace(result, path=out / name, sha256=manifest.sha256)
        log.info("%s: %.1f KB, accuracy %.2f%% (%+.2f pp vs Keras), agreement %.2f%%: %s", name,
                 len(model_bytes) / 1024, 100 * metrics.accuracy, metrics.delta_pp, 100 * metrics.agreement, status)
        results.append(result)
        if progress:
            following = f"; {variant_name(size, kinds[i + 1])}: converting" if i + 1 < len(kinds) else ""
            progress(f"{name}: {status}{following}", done + i + 1, total)
    return results


def _test_interval(probs: Any, y: Any, data: RunData, info: RunInfo) -> dict[str, Any]:
    """This variant's own test figure with its 95 % interval over subjects (none for runs without a test side)."""
    if not data.test:
        return {}
    from edgeclf.metrics import bootstrap_interval, decide

    pred = decide(probs, len(info.labels))
    return {"test": bootstrap_interval(pred == y, data.test_groups, y).to_dict()}


def _manifest(run: RunDir, info: RunInfo, size: int, kind: QuantizationKind, r: VariantResult,
              test: dict[str, Any], binary_output: str = "sigmoid") -> Manifest:
    return Manifest(
        labels=tuple(info.labels), task=info.task, positive_label=info.positive_label, binary_output=binary_output,
        preprocess=info.models[size].preprocess, input=r.input, output=r.output,
        source=Source(run=str(run.path.resolve()), arch=info.arch, size=size, quantization=kind.name,
                      io_dtype=kind.io_dtype if kind.name == "int8" else r.input.dtype),
        metrics=BundleMetrics(**r.metrics.to_dict(), status=r.status,
                              test=Interval.from_dict(test["test"]) if test else None,
                              measured_on="test" if test else "validation (run made before test splits)"),
        runtimes=dict(r.runtimes),
    )

