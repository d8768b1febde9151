"""edgeclf.tflite_file's op-code reader and edgeclf.tflite_ops' tflite-runtime 2.14 op-version table.

Checked three ways: against TensorFlow's own generated schema reader, against verdicts on models from
today's converter, and against a real tflite-runtime 2.14 (a TensorFlow-free venv, run as a subprocess):
every variant's verdict must match what the runtime does, and for each op edgeclf's models use, the
table's max version must load there and max + 1 must be refused.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from edgeclf.errors import ModelError
from edgeclf.tflite_file import BUILTIN_NAMES, OpCode, read_op_codes
from edgeclf.tflite_ops import TFLITE_RUNTIME_214_MAX, check_tflite_runtime_214, tflite_runtime_214_verdict

from .conftest import REPO

pytestmark = pytest.mark.xdist_group("convert")

# The ops edgeclf's architectures produce in any quantization (train/archs.py and the converter's glue).
EDGECLF_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "MAX_POOL_2D", "AVERAGE_POOL_2D", "MEAN", "FULLY_CONNECTED",
               "RESHAPE", "LOGISTIC", "SOFTMAX", "QUANTIZE", "DEQUANTIZE", "ADD", "MUL", "PAD", "RELU", "RELU6",
               "HARD_SWISH", "CONCATENATION")

LOAD_ON_RUNTIME = r"""
import json, sys
import numpy as np
import tflite_runtime
from tflite_runtime.interpreter import Interpreter
out = {"version": tflite_runtime.__version__, "tensorflow": "tensorflow" in sys.modules, "results": {}}
for path in sys.argv[2:]:
    try:
        it = Interpreter(model_path=path)
        if sys.argv[1] == "invoke":
            it.allocate_tensors()
            d = it.get_input_details()[0]
            it.set_tensor(d["index"], np.zeros(d["shape"], d["dtype"]))
            it.invoke()
        out["results"][path] = "ok"
    except Exception as e:
        out["results"][path] = (str(e).strip().splitlines() or [type(e).__name__])[0]
print(json.dumps(out))
"""


def tflite_runtime_python() -> str:
    """The Python of a venv with tflite-runtime 2.14 and no TensorFlow: $EDGECLF_TFL_PYTHON, REPO/.venv-tflite
    (what scripts/test.sh and CI build), or ../venv-tfl beside the checkout. Fails loudly when none works."""
    candidates = [os.environ.get("EDGECLF_TFL_PYTHON"), REPO / ".venv-tflite" / "bin" / "python",
                  REPO.parent / "venv-tfl" / "bin" / "python"]
    for c in candidates:
        if c and Path(c).is_file():
            return str(c)
    pytest.fail("no tflite-runtime 2.14 venv found: run scripts/test.sh (it builds .venv-tflite) or set "
                "EDGECLF_TFL_PYTHON to a Python with tflite-runtime 2.14 and numpy<2")


def run_on_tflite_runtime(paths: list[Path], invoke: bool) -> dict[str, str]:
    py = tflite_runtime_python()
    p = subprocess.run([py, "-c", LOAD_ON_RUNTIME, "invoke" if invoke else "build", *map(str, paths)],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, f"{py}: {p.stderr[-2000:]}"
    out = json.loads(p.stdout.strip().splitlines()[-1])
    assert out["version"].startswith("2.14") and not out["tensorflow"], out
    return out["results"]


@pytest.fixture(scope="module")
def variants(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Today's converter output for a small net with a Flatten -> Dense head, in every kind edgeclf makes."""
    from edgeclf.convert.export import convert_keras
    from edgeclf.convert.quantize import QuantizationKind as Q

    from .runfixture import tiny_model

    import numpy as np

    rng = np.random.default_rng(0)
    calib = rng.random((8, 1, 24, 24, 3), dtype=np.float32)
    kinds = (Q.for_float32(), Q.for_float16(), Q.for_dynamic(), Q.for_int8("uint8", 8), Q.for_int8("int8", 8),
             Q.for_int8("float32", 8))
    out = tmp_path_factory.mktemp("variants")
    paths = {}
    for kind, data in convert_keras(tiny_model(24, 2), 24, kinds, lambda: ([x] for x in calib)):
        paths[kind.label] = out / f"{kind.label}.tflite"
        paths[kind.label].write_bytes(data)
    return paths


def _schema():
    from tensorflow.lite.python import schema_py_generated as schema

    return schema


def test_reader_agrees_with_tensorflows_schema(variants: dict[str, Path]) -> None:
    schema = _schema()
    for label, path in variants.items():
        data = path.read_bytes()
        model = schema.ModelT.InitFromPackedBuf(bytearray(data), 0)
        theirs = [(max(oc.builtinCode, oc.deprecatedBuiltinCode), oc.version) for oc in model.operatorCodes]
        ours = read_op_codes(data)
        assert [(o.code, o.version) for o in ours] == theirs, label
        names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
        assert [o.name for o in ours] == [names[c] for c, _ in theirs]
    assert len(BUILTIN_NAMES) == len(names) and all(BUILTIN_NAMES[c] == n for c, n in names.items())


def test_verdicts_on_todays_converter_output(variants: dict[str, Path]) -> None:
    verdicts = {label: tflite_runtime_214_verdict(p.read_bytes()) for label, p in variants.items()}
    dyn = verdicts.pop("dynamic")
    assert not dyn.loads and "FULLY_CONNECTED v12" in dyn.why and "up to v10" in dyn.why
    assert [str(op) for op in dyn.missing] == ["FULLY_CONNECTED v12"]
    assert all(v.loads for v in verdicts.values()), verdicts


def test_verdicts_match_a_real_tflite_runtime_214(variants: dict[str, Path]) -> None:
    results = run_on_tflite_runtime(list(variants.values()), invoke=True)
    for label, path in variants.items():
        real = results[str(path)]
        verdict = tflite_runtime_214_verdict(path.read_bytes())
        assert (real == "ok") == verdict.loads, (label, real, verdict)
    assert "Didn't find op for builtin opcode 'FULLY_CONNECTED' version '12'" in results[str(variants["dynamic"])]


def _with_op(data: bytes, name: str, version: int) -> bytes:
    """The model with its first operator code rewritten to `name` v`version` (what the table was measured on)."""
    import flatbuffers

    schema = _schema()
    model = schema.ModelT.InitFromPackedBuf(bytearray(data), 0)
    code = BUILTIN_NAMES.index(name)
    model.operatorCodes[0].builtinCode = code
    model.operatorCodes[0].deprecatedBuiltinCode = min(code, 127)
    model.operatorCodes[0].version = version
    b = flatbuffers.Builder(0)
    b.Finish(model.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def test_table_matches_a_real_tflite_runtime_214_for_edgeclfs_ops(variants: dict[str, Path], tmp_path: Path) -> None:
    base = variants["int8"].read_bytes()
    cases = {}
    for name in EDGECLF_OPS:
        top = TFLITE_RUNTIME_214_MAX[name]
        for version, should_load in ((top, True), (top + 1, False)):
            path = tmp_path / f"{name}-v{version}.tflite"
            data = _with_op(base, name, version)
            path.write_bytes(data)
            assert tflite_runtime_214_verdict(data).loads is should_load
            cases[path] = (name, version, should_load)
    results = run_on_tflite_runtime(list(cases), invoke=False)
    for path, (name, version, should_load) in cases.items():
        refused = f"Didn't find op for builtin opcode '{name}' version '{version}'" in results[str(path)]
        assert refused is not should_load, (name, version, results[str(path)])


def test_unknown_and_custom_ops_do_not_load() -> None:
    v = check_tflite_runtime_214([OpCode("CONV_2D", 3, 1), OpCode("STABLEHLO_ADD", 163, 1),
                                  OpCode("CUSTOM", 32, 1, "MyOp")])
    assert not v.loads and "STABLEHLO_ADD v1, which tflite-runtime 2.14 does not have" in v.why and "'MyOp'" in v.why
    assert check_tflite_runtime_214([OpCode("CONV_2D", 3, 7), OpCode("ADD", 0, 5)]).loads


@pytest.mark.parametrize("data,what", [
    (b"", r"\(0 bytes\)"), (b"12345678", r"\(8 bytes\)"),
    (b"<!DOCTYPE html><html>404</html>", "it is an HTML page"),
    ((4000).to_bytes(4, "little") + b"TFL3" + bytes(8), "past"),
])
def test_garbage_is_a_model_error(data: bytes, what: str) -> None:
    with pytest.raises(ModelError, match=what):
        read_op_codes(data, "m.tflite")


def test_truncated_model_is_a_model_error(variants: dict[str, Path]) -> None:
    data = variants["int8"].read_bytes()
    with pytest.raises(ModelError, match="not a valid TFLite model"):
        read_op_codes(data[:64])


def test_reader_needs_no_tensorflow() -> None:
    code = ("import sys, edgeclf.tflite_ops as t; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'numpy', 'flatbuffers')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "[]", out
