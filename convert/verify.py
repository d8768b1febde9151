"""Check a converted model against the trained Keras model: accuracy, agreement, score difference, loading.

A variant is verified, not trusted: it runs on a real interpreter over the run's held-out images and
its answers are compared with the Keras model's on the same inputs.
"""

from __future__ import annotations

import importlib.util
import logging
from dataclasses import asdict, dataclass
from typing import Any, Mapping

import numpy as np

from edgeclf.bundle import TensorSpec
from edgeclf.contracts import RuntimeVerdict
from edgeclf.errors import ModelError
from edgeclf.native_output import quiet_native
from edgeclf.tflite_ops import RUNTIME_214, tflite_runtime_214_verdict

log = logging.getLogger(__name__)

LITERT = "ai-edge-litert"
THREADS = 2


@dataclass(frozen=True)
class Metrics:
    """What a variant measured on the held-out images (accuracies in 0..1, delta in percentage points)."""

    accuracy: float
    keras_accuracy: float
    delta_pp: float
    agreement: float
    mean_abs_diff: float
    n: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def decisions(probs: np.ndarray, task: str) -> np.ndarray:
    """Class indices from probabilities (`edgeclf.metrics.decide`: sigmoid >= 0.5 is labels[1], else argmax)."""
    from edgeclf.metrics import decide

    return decide(probs)


def keras_probs(model: Any, x: np.ndarray, batch: int = 32, quiet: bool = True) -> np.ndarray:
    """The trained model's probabilities, (N, outputs) float32, in inference mode."""
    with quiet_native(quiet):
        out = [np.asarray(model(x[i:i + batch], training=False)) for i in range(0, len(x), batch)]
    return np.concatenate(out).astype(np.float32).reshape(len(x), -1)


def _interpreter_class() -> tuple[str, Any]:
    if importlib.util.find_spec("ai_edge_litert") is not None:
        from ai_edge_litert.interpreter import Interpreter

        return LITERT, Interpreter
    import tensorflow as tf  # the desktop side always has it; say that ai-edge-litert was not used

    log.info("ai-edge-litert is not installed here; checking variants with tensorflow.lite instead")
    return "tensorflow.lite", tf.lite.Interpreter


def _spec(detail: Mapping[str, Any]) -> TensorSpec:
    dtype = np.dtype(detail["dtype"]).name
    scale, zero_point = detail["quantization"]
    if dtype in ("uint8", "int8"):
        return TensorSpec(dtype, float(scale), int(zero_point))
    return TensorSpec(dtype)


def quantize_input(x: np.ndarray, spec: TensorSpec) -> np.ndarray:
    """Float model input -> the tensor's dtype (what the edge does before invoke)."""
    if not spec.quantized:
        return x.astype(spec.dtype, copy=False)
    info = np.iinfo(spec.dtype)
    return np.clip(np.round(x / spec.scale + spec.zero_point), info.min, info.max).astype(spec.dtype)


def dequantize_output(y: np.ndarray, spec: TensorSpec) -> np.ndarray:
    if not spec.quantized:
        return y.astype(np.float32)
    return (y.astype(np.float32) - spec.zero_point) * spec.scale


def run_outputs(interpreter_class: Any, model_bytes: bytes,
                x: np.ndarray) -> tuple[dict[str, tuple[np.ndarray, TensorSpec]], TensorSpec]:
    """Every output of the model on every image, by tensor name: ({name: (values (N, n), spec)}, input spec)."""
    it = interpreter_class(model_content=model_bytes, num_threads=THREADS)
    it.allocate_tensors()
    (inp,), outs = it.get_input_details(), it.get_output_details()
    in_spec = _spec(inp)
    got: dict[str, list[np.ndarray]] = {o["name"]: [] for o in outs}
    for i in range(len(x)):
        it.set_tensor(inp["index"], quantize_input(x[i:i + 1], in_spec))
        it.invoke()
        for o in outs:
            got[o["name"]].append(dequantize_output(it.get_tensor(o["index"]), _spec(o)).reshape(-1))
    return {o["name"]: (np.stack(got[o["name"]]), _spec(o)) for o in outs}, in_spec


def _run(interpreter_class: Any, model_bytes: bytes, x: np.ndarray,
         output: str | None = None) -> tuple[np.ndarray, TensorSpec, TensorSpec]:
    """(values of the output named `output`, or of the only one; input spec; that output's spec)."""
    outs, in_spec = run_outputs(interpreter_class, model_bytes, x)
    if output is None:
        (output,) = outs  # one output unless a name is given
    probs, out_spec = outs[output]
    return probs, in_spec, out_spec


def tflite_probs(model_bytes: bytes, x: np.ndarray, quiet: bool = True,
                 output: str | None = None) -> tuple[np.ndarray, TensorSpec, TensorSpec, str]:
    """Run the converted model on every image: (probs, input spec, output spec, interpreter name); `output`:
    the probabilities' tensor name when the model has more than one output."""
    name, cls = _interpreter_class()
    with quiet_native(quiet) as cap:
        try:
            probs, in_spec, out_spec = _run(cls, model_bytes, x, output)
            err = None
        except Exception as e:  # the interpreter raises ValueError/RuntimeError with multi-line texts
            err = (str(e).strip().splitlines() or [type(e).__name__])[0]
    if err is not None:
        raise ModelError(f"the converted model does not run on {name} ({err}"
                         + (f"; {cap.tail(2)}" if cap.tail(2) else "") + "); run with -v for details")
    return probs, in_spec, out_spec, name


def compare(probs: np.ndarray, reference: np.ndarray, labels: np.ndarray, task: str) -> Metrics:
    """Top-1 accuracy of both, the drop in percentage points, decision agreement and mean |score diff|."""
    pred, ref = decisions(probs, task), decisions(reference, task)
    acc, keras_acc = float(np.mean(pred == labels)), float(np.mean(ref == labels))
    return Metrics(accuracy=acc, keras_accuracy=keras_acc, delta_pp=round(100 * (acc - keras_acc), 4),
                   agreement=float(np.mean(pred == ref)), mean_abs_diff=float(np.mean(np.abs(probs - reference))),
                   n=int(len(labels)))


def _module_version(dist: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return "unknown"


def runtime_report(model_bytes: bytes, interpreter: str, x_one: np.ndarray,
                   quiet: bool = True) -> dict[str, RuntimeVerdict]:
    """Which runtime loads the model: measured where installed, else judged from the op versions."""
    report: dict[str, RuntimeVerdict] = {}
    if interpreter == LITERT:
        report[LITERT] = RuntimeVerdict(True, f"loaded and invoked here (ai-edge-litert {_module_version(LITERT)})",
                                        "load+invoke")
    else:
        report[LITERT] = RuntimeVerdict(None, "ai-edge-litert is not installed where this was converted", "not checked")
    verdict = tflite_runtime_214_verdict(model_bytes)
    entry = verdict.runtime_verdict()
    if importlib.util.find_spec("tflite_runtime") is not None:
        version = _module_version("tflite-runtime")
        if version.startswith("2.14"):
            from tflite_runtime.interpreter import Interpreter

            with quiet_native(quiet):
                try:
                    run_outputs(Interpreter, model_bytes, x_one)
                    entry = RuntimeVerdict(True, "loaded and invoked here (tflite-runtime 2.14)", "load+invoke")
                except Exception as e:
                    first = (str(e).strip().splitlines() or [type(e).__name__])[0]
                    entry = RuntimeVerdict(False, verdict.why if not verdict.loads else first, "load+invoke")
    report[RUNTIME_214] = entry
    return report
