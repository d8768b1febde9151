"""Which operators (and versions) a .tflite model uses, and whether tflite-runtime 2.14 can load it.

Pure Python, no interpreter: the operator codes come from `edgeclf.tflite_file` (the one reader of the
file format); this module keeps only the measured tflite-runtime 2.14 table and the verdict. An
interpreter resolves every entry of `operator_codes` when it builds, so one entry whose version the
runtime does not register makes the whole model refuse to load.

Why it matters: tflite-runtime 2.14 is the last tflite-runtime release and what 32-bit Pi OS and
Python <= 3.11 set-ups have, while today's converter emits newer op versions (a dynamic-range model
from TF 2.21 needs FULLY_CONNECTED v12; tflite-runtime 2.14 registers up to v10).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

from .contracts import RuntimeVerdict
from .tflite_file import OpCode, read_op_codes

# Highest version of each builtin op that tflite-runtime 2.14.0's BuiltinOpResolver registers. Measured,
# not copied (TF 2.14's register.cc was not at hand): a real converter-made model had one operator code
# rewritten to every builtin code 0..209 at versions 1..16, and each file was built with tflite-runtime
# 2.14.0 (x86_64, numpy 1.26.4, no TensorFlow). A (code, version) that builds, or fails later than op
# lookup, is registered; "Didn't find op for builtin opcode 'X' version 'N'" or "Op builtin_code out of
# range" is not. Every op registers a contiguous range starting at 1 (BROADCAST_TO at 2). Codes >= 162
# (STABLEHLO_*, DILATE, REDUCE_WINDOW, ...) are past 2.14's schema; CONCAT_EMBEDDINGS, CALL, DELEGATE and
# PLACEHOLDER_FOR_GREATER_OP_CODES have no kernel. tests/test_tflite_ops.py re-checks the ops edgeclf's
# models use (max loads, max + 1 refused) against the real runtime in the tflite-runtime venv.
TFLITE_RUNTIME_214_MAX: Mapping[str, int] = {
    "ADD": 5, "AVERAGE_POOL_2D": 3, "CONCATENATION": 4, "CONV_2D": 7, "DEPTHWISE_CONV_2D": 7, "DEPTH_TO_SPACE": 2,
    "DEQUANTIZE": 5, "EMBEDDING_LOOKUP": 3, "FLOOR": 1, "FULLY_CONNECTED": 10, "HASHTABLE_LOOKUP": 1,
    "L2_NORMALIZATION": 2, "L2_POOL_2D": 1, "LOCAL_RESPONSE_NORMALIZATION": 1, "LOGISTIC": 3, "LSH_PROJECTION": 1,
    "LSTM": 4, "MAX_POOL_2D": 3, "MUL": 7, "RELU": 3, "RELU_N1_TO_1": 1, "RELU6": 3, "RESHAPE": 1,
    "RESIZE_BILINEAR": 4, "RNN": 3, "SOFTMAX": 3, "SPACE_TO_DEPTH": 2, "SVDF": 4, "TANH": 3, "SKIP_GRAM": 1,
    "EMBEDDING_LOOKUP_SPARSE": 1, "PAD": 4, "UNIDIRECTIONAL_SEQUENCE_RNN": 3, "GATHER": 6, "BATCH_TO_SPACE_ND": 4,
    "SPACE_TO_BATCH_ND": 4, "TRANSPOSE": 6, "MEAN": 3, "SUB": 5, "DIV": 2, "SQUEEZE": 2,
    "UNIDIRECTIONAL_SEQUENCE_LSTM": 4, "STRIDED_SLICE": 8, "BIDIRECTIONAL_SEQUENCE_RNN": 3, "EXP": 2, "TOPK_V2": 3,
    "SPLIT": 4, "LOG_SOFTMAX": 2, "BIDIRECTIONAL_SEQUENCE_LSTM": 3, "CAST": 5, "PRELU": 1, "MAXIMUM": 4, "ARG_MAX":
    3, "MINIMUM": 4, "LESS": 3, "NEG": 1, "PADV2": 4, "GREATER": 2, "GREATER_EQUAL": 3, "LESS_EQUAL": 2, "SELECT":
    4, "SLICE": 6, "SIN": 1, "TRANSPOSE_CONV": 4, "SPARSE_TO_DENSE": 3, "TILE": 3, "EXPAND_DIMS": 1, "EQUAL": 4,
    "NOT_EQUAL": 3, "LOG": 1, "SUM": 2, "SQRT": 1, "RSQRT": 2, "SHAPE": 1, "POW": 1, "ARG_MIN": 3, "FAKE_QUANT": 2,
    "REDUCE_PROD": 2, "REDUCE_MAX": 3, "PACK": 4, "LOGICAL_OR": 1, "ONE_HOT": 1, "LOGICAL_AND": 1, "LOGICAL_NOT": 1,
    "UNPACK": 4, "REDUCE_MIN": 3, "FLOOR_DIV": 3, "REDUCE_ANY": 1, "SQUARE": 1, "ZEROS_LIKE": 1, "FILL": 4,
    "FLOOR_MOD": 2, "RANGE": 2, "RESIZE_NEAREST_NEIGHBOR": 4, "LEAKY_RELU": 2, "SQUARED_DIFFERENCE": 2,
    "MIRROR_PAD": 3, "ABS": 5, "SPLIT_V": 2, "UNIQUE": 1, "CEIL": 1, "REVERSE_V2": 3, "ADD_N": 1, "GATHER_ND": 4,
    "COS": 1, "WHERE": 2, "RANK": 1, "ELU": 1, "REVERSE_SEQUENCE": 1, "MATRIX_DIAG": 1, "QUANTIZE": 3,
    "MATRIX_SET_DIAG": 1, "ROUND": 1, "HARD_SWISH": 1, "IF": 1, "WHILE": 1, "NON_MAX_SUPPRESSION_V4": 1,
    "NON_MAX_SUPPRESSION_V5": 1, "SCATTER_ND": 1, "SELECT_V2": 2, "DENSIFY": 1, "SEGMENT_SUM": 1, "BATCH_MATMUL": 4,
    "CUMSUM": 1, "CALL_ONCE": 1, "BROADCAST_TO": 3, "RFFT2D": 1, "CONV_3D": 1, "IMAG": 1, "REAL": 1, "COMPLEX_ABS":
    1, "HASHTABLE": 1, "HASHTABLE_FIND": 1, "HASHTABLE_IMPORT": 1, "HASHTABLE_SIZE": 1, "REDUCE_ALL": 1,
    "CONV_3D_TRANSPOSE": 1, "VAR_HANDLE": 1, "READ_VARIABLE": 1, "ASSIGN_VARIABLE": 1, "BROADCAST_ARGS": 1,
    "RANDOM_STANDARD_NORMAL": 1, "BUCKETIZE": 1, "RANDOM_UNIFORM": 1, "MULTINOMIAL": 1, "GELU": 2,
    "DYNAMIC_UPDATE_SLICE": 1, "RELU_0_TO_1": 1, "UNSORTED_SEGMENT_PROD": 1, "UNSORTED_SEGMENT_MAX": 1,
    "UNSORTED_SEGMENT_SUM": 1, "ATAN2": 1, "UNSORTED_SEGMENT_MIN": 1, "SIGN": 2, "BITCAST": 1, "BITWISE_XOR": 1,
    "RIGHT_SHIFT": 1,
}

RUNTIME_214 = "tflite-runtime-2.14"
# Custom ops are resolved by name, not version; the table above cannot speak for them.
_CUSTOM_HINT = "custom ops are not checked against tflite-runtime 2.14"


@dataclass(frozen=True)
class Verdict:
    """Whether a runtime loads a model, and why not (the ops it lacks, and what to pick instead)."""

    runtime: str
    loads: bool
    why: str
    missing: tuple[OpCode, ...] = ()

    def runtime_verdict(self) -> RuntimeVerdict:
        """The manifest's form of this verdict (judged from the op-version table, not a load)."""
        return RuntimeVerdict(self.loads, self.why, "op-version table")


def check_tflite_runtime_214(ops: Sequence[OpCode], table: Mapping[str, int] | None = None) -> Verdict:
    """Whether tflite-runtime 2.14 can build an interpreter for a model with these op codes, and why not."""
    table = TFLITE_RUNTIME_214_MAX if table is None else table
    missing, reasons = [], []
    for op in ops:
        if op.name == "CUSTOM":
            missing.append(op)
            reasons.append(f"custom op {op.custom!r}, and {_CUSTOM_HINT}")
        elif op.name not in table:
            missing.append(op)
            reasons.append(f"{op.name} v{op.version}, which tflite-runtime 2.14 does not have")
        elif op.version > table[op.name]:
            missing.append(op)
            reasons.append(f"{op.name} v{op.version}, tflite-runtime 2.14 has up to v{table[op.name]}")
    if missing:
        return Verdict(RUNTIME_214, False, "needs " + "; ".join(dict.fromkeys(reasons)), tuple(missing))
    return Verdict(RUNTIME_214, True, "every op version is one tflite-runtime 2.14 registers")


def tflite_runtime_214_verdict(data: bytes, name: str = "model.tflite") -> Verdict:
    """Read the op codes of `data` and judge them against tflite-runtime 2.14."""
    return check_tflite_runtime_214(read_op_codes(data, name))
