"""A verified bundle in a TFLite interpreter: frame in, class probabilities out.

Loading order, so that nothing unverified reaches native code: `load_bundle` (schema, sha256, TFLite
identifier) -> the manifest's verdict for this runtime -> structural flatbuffer check -> first load probed
in a child process -> in-process interpreter -> its input/output shape, dtype and quantization checked
against the manifest (a disagreement is refused, naming the manifest field).

Per frame: the `Preprocessor` writes into its own buffer, that is copied into the interpreter's input
tensor, `invoke()`, and the output is dequantized (manifest TensorSpec) into a fixed probability vector.
"""

from __future__ import annotations

import logging
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from edgeclf.bundle import Bundle, Manifest, TensorSpec, load_bundle
from edgeclf.edge.flatbuf import verify_tflite
from edgeclf.edge.preprocess import Preprocessor
from edgeclf.edge.runtime import Runtime, check_threads, default_threads, find_runtime, manifest_key, probe_model
from edgeclf.errors import BundleError, ModelError
from edgeclf.native_output import hold_native_stderr
from edgeclf.scores import calibrate_into

log = logging.getLogger(__name__)


def _refuse_by_verdict(bundle: Bundle, rt: Runtime) -> None:
    """Refuse early when the manifest (or the op table, for tflite-runtime 2.14) says it cannot load here."""
    key = manifest_key(rt)
    verdict = bundle.manifest.runtimes.get(key)
    if verdict is None and key == "tflite-runtime-2.14":
        from edgeclf.tflite_ops import tflite_runtime_214_verdict

        v = tflite_runtime_214_verdict(bundle.model_bytes, str(bundle.path / "model.tflite"))
        verdict = v.runtime_verdict()
    if verdict is not None and verdict.loads is False:
        why = f" ({verdict.why})" if verdict.why else ""
        raise ModelError(f"{bundle.path}: {key} cannot load this variant{why}; pick a variant whose manifest says it "
                         f"loads on {key} (`edgeclf info`), e.g. full int8, or install ai-edge-litert (64-bit)")


def _check_tensor(field: str, spec: TensorSpec, detail: dict[str, Any]) -> None:
    dtype = np.dtype(detail["dtype"]).name
    if dtype != spec.dtype:
        raise BundleError(f"manifest: {field}.dtype {spec.dtype!r} disagrees with the model's {field} dtype {dtype!r}; "
                          "the manifest does not belong to this model; re-convert")
    scale, zero_point = float(detail["quantization"][0]), int(detail["quantization"][1])
    if spec.quantized:
        if abs(scale - spec.scale) > 1e-6 * max(scale, 1e-12) + 1e-12:
            raise BundleError(f"manifest: {field}.scale {spec.scale:.8g} disagrees with the model's {scale:.8g}; "
                              "the manifest does not belong to this model; re-convert")
        if zero_point != spec.zero_point:
            raise BundleError(f"manifest: {field}.zero_point {spec.zero_point} disagrees with the model's "
                              f"{zero_point}; the manifest does not belong to this model; re-convert")


def named_outputs(m: Manifest, outputs: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """(the probabilities' output, the feature distance's or None), found by the tensor names the manifest's
    `calibration.feature_unknown` records (never by shape: a sigmoid and the distance are both one value)."""
    rule = m.calibration.feature_unknown if m.calibration is not None else None
    if rule is None:
        if len(outputs) != 1:
            raise BundleError(f"model has {len(outputs)} outputs and its manifest names no second one; an edgeclf "
                              "classifier has one; re-convert with `edgeclf convert`")
        return outputs[0], None
    by_name = {o["name"]: o for o in outputs}
    missing = [n for n in (rule.probabilities_output, rule.output) if n not in by_name]
    if len(outputs) != 2 or missing:
        raise BundleError(f"manifest: calibration.feature_unknown names outputs {rule.probabilities_output!r} and "
                          f"{rule.output!r}, the model has {sorted(by_name)}; the manifest does not belong to this "
                          "model; re-convert")
    return by_name[rule.probabilities_output], by_name[rule.output]


def check_against_manifest(m: Manifest, inputs: list[dict[str, Any]], outputs: list[dict[str, Any]]) -> None:
    """Refuse an interpreter whose tensors disagree with the manifest, naming the manifest field."""
    if len(inputs) != 1:
        raise BundleError(f"model has {len(inputs)} inputs; an edgeclf classifier has one; re-convert with "
                          "`edgeclf convert`")
    probs, distance = named_outputs(m, outputs)
    p = m.preprocess
    shape = [int(v) for v in inputs[0]["shape"]]
    if len(shape) != 4 or shape[0] != 1 or shape[3] != p.channels:
        raise BundleError(f"model input shape {shape} is not [1, height, width, {p.channels}]; re-convert")
    if shape[1] != p.height:
        raise BundleError(f"manifest: preprocess.height {p.height} disagrees with the model's input shape {shape}; "
                          "the manifest does not belong to this model; re-convert")
    if shape[2] != p.width:
        raise BundleError(f"manifest: preprocess.width {p.width} disagrees with the model's input shape {shape}; "
                          "the manifest does not belong to this model; re-convert")
    _check_tensor("input", m.input, inputs[0])
    out_shape = [int(v) for v in probs["shape"]]
    if int(np.prod(out_shape)) != m.num_outputs:
        raise BundleError(f"manifest: labels ({len(m.labels)}, task {m.task!r}) expect {m.num_outputs} output "
                          f"value(s), the model's output shape is {out_shape}; re-convert")
    _check_tensor("output", m.output, probs)
    if distance is not None:
        rule = m.calibration.feature_unknown  # type: ignore[union-attr]
        if int(np.prod(distance["shape"])) != len(m.labels):
            raise BundleError(f"model output {rule.output!r} has shape {list(distance['shape'])}, not one distance "
                              f"per label ({len(m.labels)}); re-convert")
        _check_tensor("calibration.feature_unknown.output", _distance_spec(rule), distance)


def _distance_spec(rule: Any) -> TensorSpec:
    return TensorSpec(rule.output_dtype or "float32", rule.output_scale or 0.0, rule.output_zero_point or 0)


class Classifier:
    """One bundle in one interpreter. Not thread-safe: one caller (the loop) at a time."""

    def __init__(self, bundle: Bundle, runtime: Runtime, threads: int | None = None, crop: str | None = None,
                 probe: bool = True, quiet: bool = False):
        self.bundle = bundle
        self.manifest = m = bundle.manifest
        self.runtime = runtime
        check_threads(threads)
        self.threads = threads or default_threads()
        name = str(bundle.path / "model.tflite")
        _refuse_by_verdict(bundle, runtime)
        verify_tflite(bundle.model_bytes, name)
        if probe:
            probe_model(bundle.model_bytes, m.sha256, runtime, name)
        try:
            # `quiet`: the runtime's own "Created TensorFlow Lite XNNPACK delegate" banner stays off stderr.
            with hold_native_stderr(quiet):
                self.interpreter = runtime.interpreter_class(model_content=bundle.model_bytes, num_threads=self.threads)
                self.interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as e:
            raise ModelError(f"{name}: {runtime.name} cannot load it ({' '.join(str(e).split())[:200]}); "
                             "re-copy the bundle or re-convert") from None
        inputs, outputs = self.interpreter.get_input_details(), self.interpreter.get_output_details()
        check_against_manifest(m, inputs, outputs)
        spec = m.preprocess if crop is None else replace(m.preprocess, crop=crop)
        self.labels = m.labels
        self.pre = Preprocessor(spec, m.input)
        self._input = self.interpreter.tensor(inputs[0]["index"])
        probs_out, distance_out = named_outputs(m, outputs)
        self._output = self.interpreter.tensor(probs_out["index"])
        self._raw = np.empty(m.num_outputs, np.dtype(probs_out["dtype"]))
        # The feature distance (`calibration.feature_unknown`), read after each invoke; nan without that output.
        self.distance = float("nan")
        self._distance = None if distance_out is None else self.interpreter.tensor(distance_out["index"])
        self._distance_spec = None if distance_out is None else _distance_spec(m.calibration.feature_unknown)
        self._real = np.empty(m.num_outputs, np.float32)
        self.probs = np.empty(len(m.labels), np.float32)
        # With a calibration record, `probs` are calibrated and `raw_probs` are the model's own; else one array.
        self.calibration = m.calibration
        self.raw_probs = self.probs if m.calibration is None else np.empty(len(m.labels), np.float32)
        self._work = np.empty(len(m.labels), np.float64)  # calibration's scratch row

    @classmethod
    def load(cls, path: str | os.PathLike[str], runtime: str | None = None, threads: int | None = None,
             crop: str | None = None, quiet: bool = False) -> "Classifier":
        """Verify and load a bundle folder on the preferred (or named) runtime."""
        check_threads(threads)  # before anything is read
        bundle = load_bundle(path)
        rt = find_runtime(runtime)
        clf = cls(bundle, rt, threads, crop, quiet=quiet)
        log.info("loaded %s on %s %s, %d thread(s)", Path(bundle.path).name, rt.name, rt.version, clf.threads)
        return clf

    def preprocess(self, frame_bgr: np.ndarray) -> None:
        """Frame -> model input tensor (copied into the interpreter's buffer)."""
        np.copyto(self._input()[0], self.pre(frame_bgr)[0])

    def invoke(self) -> None:
        self.interpreter.invoke()

    def postprocess(self) -> np.ndarray:
        """Dequantize the output into `self.probs` (one probability per label, calibrated when the manifest
        says how) and return it; the model's own probabilities stay in `self.raw_probs`."""
        np.copyto(self._raw, self._output().reshape(-1))
        spec = self.manifest.output
        if spec.quantized:
            np.subtract(self._raw, spec.zero_point, out=self._real, casting="unsafe")
            self._real *= np.float32(spec.scale)
        else:
            np.copyto(self._real, self._raw, casting="unsafe")
        raw = self.raw_probs
        if self.manifest.num_outputs == 1:  # one sigmoid; a two-class binary output is read as it is
            raw[1] = self._real[0]
            raw[0] = 1.0 - self._real[0]
        else:
            np.copyto(raw, self._real)
        if self.calibration is not None:
            c = self.calibration
            calibrate_into(raw, self.probs, c.temperature, c.clip, self._work)  # `calibrate`, bit for bit
        if self._distance is not None:
            d, ds = self._distance().min(), self._distance_spec  # to the nearest class (scale > 0)
            self.distance = (int(d) - ds.zero_point) * ds.scale if ds.quantized else float(d)
        return self.probs

    def __call__(self, frame_bgr: np.ndarray) -> np.ndarray:
        self.preprocess(frame_bgr)
        self.invoke()
        return self.postprocess()

    def same_input(self, other: "Classifier") -> bool:
        """Whether `other` turns a frame into the very same model input (preprocessing and input tensor)."""
        return self.pre.spec == other.pre.spec and self.pre.tensor == other.pre.tensor

    def classify_input(self, x: np.ndarray) -> np.ndarray:
        """Probabilities of a model input that a Classifier with `same_input` prepared (its `pre.out`)."""
        np.copyto(self._input()[0], x[0])
        self.invoke()
        return self.postprocess()
