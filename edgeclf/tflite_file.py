"""The .tflite file format: the one reader of its bytes (standard library only, importable on a Pi).

A .tflite file is a flatbuffer: a little-endian root offset, the identifier "TFL3", then tables reached
through vtables and relative offsets (tensorflow/lite/schema/schema.fbs). This module owns what edgeclf
reads of it:

- `check_header`: the identifier and root offset, saying what the bytes are instead (HTML, a Git LFS
  pointer, ...). What `edgeclf.bundle` checks before a model is written or trusted.
- `verify`: header plus a bounds-checked walk of every part an interpreter dereferences (Model ->
  subgraphs -> tensors/operators, operator codes, buffers). tflite-runtime 2.14 does not verify what it is
  given: a truncated model crashes the process (SIGSEGV) or makes it allocate until it is killed. The walk
  does not prove a model is sound (the edge's child-process probe covers the rest); it turns the common
  damage — a cut-off copy — into one line. A model with TFLite metadata (`edgeclf convert` writes it) carries
  its associated files (labels.txt, ...) as a zip archive after the flatbuffer; the files the metadata
  names must be in it, whole (a copy cut off there loads, but is not the file that was converted).
- `read_op_codes` (operator codes and versions, what decides which runtime can load a model) and
  `version_field_positions` (for the measurement behind `edgeclf.tflite_ops`' table).

Every failure is one `ModelError`: "<name>: not a valid TFLite model (<what>); <fix>".
No flatbuffers package, no numpy, no interpreter.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from .errors import ModelError

IDENTIFIER = b"TFL3"
SCHEMA_VERSION = 3
_FIX = "re-copy the bundle or re-convert"

# tflite/schema.fbs `enum BuiltinOperator`, in code order (0..209 in the TF 2.21 schema).
BUILTIN_NAMES: tuple[str, ...] = tuple("""
ADD AVERAGE_POOL_2D CONCATENATION CONV_2D DEPTHWISE_CONV_2D DEPTH_TO_SPACE DEQUANTIZE EMBEDDING_LOOKUP FLOOR
FULLY_CONNECTED HASHTABLE_LOOKUP L2_NORMALIZATION L2_POOL_2D LOCAL_RESPONSE_NORMALIZATION LOGISTIC
LSH_PROJECTION LSTM MAX_POOL_2D MUL RELU RELU_N1_TO_1 RELU6 RESHAPE RESIZE_BILINEAR RNN SOFTMAX SPACE_TO_DEPTH
SVDF TANH CONCAT_EMBEDDINGS SKIP_GRAM CALL CUSTOM EMBEDDING_LOOKUP_SPARSE PAD UNIDIRECTIONAL_SEQUENCE_RNN
GATHER BATCH_TO_SPACE_ND SPACE_TO_BATCH_ND TRANSPOSE MEAN SUB DIV SQUEEZE UNIDIRECTIONAL_SEQUENCE_LSTM
STRIDED_SLICE BIDIRECTIONAL_SEQUENCE_RNN EXP TOPK_V2 SPLIT LOG_SOFTMAX DELEGATE BIDIRECTIONAL_SEQUENCE_LSTM
CAST PRELU MAXIMUM ARG_MAX MINIMUM LESS NEG PADV2 GREATER GREATER_EQUAL LESS_EQUAL SELECT SLICE SIN
TRANSPOSE_CONV SPARSE_TO_DENSE TILE EXPAND_DIMS EQUAL NOT_EQUAL LOG SUM SQRT RSQRT SHAPE POW ARG_MIN
FAKE_QUANT REDUCE_PROD REDUCE_MAX PACK LOGICAL_OR ONE_HOT LOGICAL_AND LOGICAL_NOT UNPACK REDUCE_MIN FLOOR_DIV
REDUCE_ANY SQUARE ZEROS_LIKE FILL FLOOR_MOD RANGE RESIZE_NEAREST_NEIGHBOR LEAKY_RELU SQUARED_DIFFERENCE
MIRROR_PAD ABS SPLIT_V UNIQUE CEIL REVERSE_V2 ADD_N GATHER_ND COS WHERE RANK ELU REVERSE_SEQUENCE MATRIX_DIAG
QUANTIZE MATRIX_SET_DIAG ROUND HARD_SWISH IF WHILE NON_MAX_SUPPRESSION_V4 NON_MAX_SUPPRESSION_V5 SCATTER_ND
SELECT_V2 DENSIFY SEGMENT_SUM BATCH_MATMUL PLACEHOLDER_FOR_GREATER_OP_CODES CUMSUM CALL_ONCE BROADCAST_TO
RFFT2D CONV_3D IMAG REAL COMPLEX_ABS HASHTABLE HASHTABLE_FIND HASHTABLE_IMPORT HASHTABLE_SIZE REDUCE_ALL
CONV_3D_TRANSPOSE VAR_HANDLE READ_VARIABLE ASSIGN_VARIABLE BROADCAST_ARGS RANDOM_STANDARD_NORMAL BUCKETIZE
RANDOM_UNIFORM MULTINOMIAL GELU DYNAMIC_UPDATE_SLICE RELU_0_TO_1 UNSORTED_SEGMENT_PROD UNSORTED_SEGMENT_MAX
UNSORTED_SEGMENT_SUM ATAN2 UNSORTED_SEGMENT_MIN SIGN BITCAST BITWISE_XOR RIGHT_SHIFT STABLEHLO_LOGISTIC
STABLEHLO_ADD STABLEHLO_DIVIDE STABLEHLO_MULTIPLY STABLEHLO_MAXIMUM STABLEHLO_RESHAPE STABLEHLO_CLAMP
STABLEHLO_CONCATENATE STABLEHLO_BROADCAST_IN_DIM STABLEHLO_CONVOLUTION STABLEHLO_SLICE STABLEHLO_CUSTOM_CALL
STABLEHLO_REDUCE STABLEHLO_ABS STABLEHLO_AND STABLEHLO_COSINE STABLEHLO_EXPONENTIAL STABLEHLO_FLOOR
STABLEHLO_LOG STABLEHLO_MINIMUM STABLEHLO_NEGATE STABLEHLO_OR STABLEHLO_POWER STABLEHLO_REMAINDER
STABLEHLO_RSQRT STABLEHLO_SELECT STABLEHLO_SUBTRACT STABLEHLO_TANH STABLEHLO_SCATTER STABLEHLO_COMPARE
STABLEHLO_CONVERT STABLEHLO_DYNAMIC_SLICE STABLEHLO_DYNAMIC_UPDATE_SLICE STABLEHLO_PAD STABLEHLO_IOTA
STABLEHLO_DOT_GENERAL STABLEHLO_REDUCE_WINDOW STABLEHLO_SORT STABLEHLO_WHILE STABLEHLO_GATHER
STABLEHLO_TRANSPOSE DILATE STABLEHLO_RNG_BIT_GENERATOR REDUCE_WINDOW STABLEHLO_COMPOSITE STABLEHLO_SHIFT_LEFT
STABLEHLO_CBRT STABLEHLO_CASE
""".split())


@dataclass(frozen=True)
class OpCode:
    """One entry of a model's operator_codes: builtin name (or CUSTOM), its code, version, custom name."""

    name: str
    code: int
    version: int
    custom: str | None = None

    def __str__(self) -> str:
        return f"{self.custom or self.name} v{self.version}"


class _Bad(Exception):
    """What is wrong, before it is worded as the one ModelError."""


def _error(name: str, what: str) -> ModelError:
    return ModelError(f"{name}: not a valid TFLite model ({what}); {_FIX}")


_Table = tuple[int, list[int]]  # (position, field offsets from its vtable)


class _Reader:
    """Bounds-checked reads of flatbuffer scalars, tables, vectors and strings; raises _Bad."""

    def __init__(self, data: bytes):
        self.data = data
        self.n = len(data)

    def scalar(self, fmt: str, pos: int) -> int:
        size = struct.calcsize(fmt)
        if pos < 0 or pos + size > self.n:
            raise _Bad(f"offset {pos} is past the end of the file ({self.n} bytes): truncated")
        return struct.unpack_from("<" + fmt, self.data, pos)[0]

    def table(self, pos: int, what: str) -> _Table:
        """The table at `pos`, after checking its vtable and extent."""
        vtable = pos - self.scalar("i", pos)
        vt_size = self.scalar("H", vtable)
        obj_size = self.scalar("H", vtable + 2)
        if vt_size < 4 or vt_size % 2 or vtable + vt_size > self.n:
            raise _Bad(f"{what}: bad vtable")
        if pos + obj_size > self.n:
            raise _Bad(f"{what}: table ends past the end of the file ({self.n} bytes): truncated")
        fields = [self.scalar("H", vtable + 4 + 2 * i) for i in range((vt_size - 4) // 2)]
        if any(f >= obj_size for f in fields if f):
            raise _Bad(f"{what}: field outside its table")
        return pos, fields

    def field(self, t: _Table, i: int) -> int | None:
        """Absolute position of field `i`, or None when it is absent (stored as its default)."""
        pos, fields = t
        return pos + fields[i] if i < len(fields) and fields[i] else None

    def ref(self, t: _Table, i: int) -> int | None:
        p = self.field(t, i)
        return None if p is None else p + self.scalar("I", p)

    def scalar_field(self, t: _Table, i: int, fmt: str, default: int = 0) -> int:
        p = self.field(t, i)
        return default if p is None else self.scalar(fmt, p)

    def vector(self, pos: int | None, elem: int, what: str) -> tuple[int, int]:
        """(first element position, length) of a vector, checked to fit in the file."""
        if pos is None:
            return 0, 0
        length = self.scalar("I", pos)
        if pos + 4 + length * elem > self.n:
            raise _Bad(f"{what}: {length} entries run past the end of the file ({self.n} bytes): truncated")
        return pos + 4, length

    def ints(self, pos: int | None, what: str) -> list[int]:
        start, length = self.vector(pos, 4, what)
        return list(struct.unpack_from(f"<{length}i", self.data, start)) if length else []

    def tables(self, pos: int | None, what: str) -> list[_Table]:
        start, length = self.vector(pos, 4, what)
        return [self.table(start + 4 * k + self.scalar("I", start + 4 * k), f"{what}[{k}]") for k in range(length)]

    def string(self, pos: int, what: str) -> str:
        start, length = self.vector(pos, 1, what)
        return self.data[start:start + length].decode("utf-8", "replace")


def check_header(data: bytes, name: str) -> None:
    """Refuse bytes that are not a TFLite flatbuffer (identifier, root offset), saying what they are instead."""
    if len(data) < 16:
        raise _error(name, f"{len(data)} bytes")
    if data[4:8] != IDENTIFIER:
        from .imageio import describe_bytes  # only on this error path: it needs numpy, the reader does not

        what = describe_bytes(data[:256])
        hint = " (run `git lfs pull`)" if what == "a Git LFS pointer" else ""
        raise ModelError(f"{name}: not a valid TFLite model, it is {what}{hint}; {_FIX}")
    root = int.from_bytes(data[0:4], "little")
    if root >= len(data):
        raise _error(name, f"truncated: root offset {root} past {len(data)} bytes")


def _model(r: _Reader) -> _Table:
    return r.table(r.scalar("I", 0), "model")


def _walk(r: _Reader) -> None:
    model = _model(r)
    version = r.scalar_field(model, 0, "I")
    if version != SCHEMA_VERSION:
        raise _Bad(f"schema version {version}, expected {SCHEMA_VERSION}")
    opcodes = r.tables(r.ref(model, 1), "operator_codes")
    buffers = r.tables(r.ref(model, 4), "buffers")
    for k, buf in enumerate(buffers):
        r.vector(r.ref(buf, 0), 1, f"buffers[{k}].data")
        offset, size = r.scalar_field(buf, 1, "Q"), r.scalar_field(buf, 2, "Q")
        if offset > 1 and offset + size > r.n:
            raise _Bad(f"buffers[{k}] ends at byte {offset + size}, past the end of the file ({r.n} bytes): truncated")
    subgraphs = r.tables(r.ref(model, 2), "subgraphs")
    if not subgraphs:
        raise _Bad("no subgraphs")
    for s, sg in enumerate(subgraphs):
        tensors = r.tables(r.ref(sg, 0), f"subgraphs[{s}].tensors")
        for k, t in enumerate(tensors):
            r.ints(r.ref(t, 0), f"tensor {k} shape")
            if r.scalar_field(t, 2, "I") >= max(len(buffers), 1):
                raise _Bad(f"tensor {k} refers to buffer {r.scalar_field(t, 2, 'I')} of {len(buffers)}")
            q = r.ref(t, 4)
            if q is not None:
                qt = r.table(q, f"tensor {k} quantization")
                r.vector(r.ref(qt, 2), 4, f"tensor {k} scale")
                r.vector(r.ref(qt, 3), 8, f"tensor {k} zero_point")
        n_t = len(tensors)
        for what, idx in (("inputs", 1), ("outputs", 2)):
            ids = r.ints(r.ref(sg, idx), f"subgraphs[{s}].{what}")
            if s == 0 and not ids:
                raise _Bad(f"the main subgraph has no {what}")
            if any(not 0 <= i < n_t for i in ids):
                raise _Bad(f"subgraphs[{s}].{what} refers to a tensor that does not exist")
        for k, op in enumerate(r.tables(r.ref(sg, 3), f"subgraphs[{s}].operators")):
            if r.scalar_field(op, 0, "I") >= len(opcodes):
                raise _Bad(f"operator {k} refers to an operator code that does not exist")
            for idx in (1, 2):
                if any(not -1 <= i < n_t for i in r.ints(r.ref(op, idx), f"operator {k} tensors")):
                    raise _Bad(f"operator {k} refers to a tensor that does not exist")
            opts = r.ref(op, 4)
            if opts is not None:
                r.table(opts, f"operator {k} options")
            r.vector(r.ref(op, 5), 1, f"operator {k} custom options")


METADATA_NAME = "TFLITE_METADATA"  # Model.metadata entry whose buffer is the ModelMetadata flatbuffer


def _metadata_files(r: _Reader, model: _Table) -> list[str]:
    """Names of the associated files the TFLite metadata refers to (model, subgraph and tensor level)."""
    buffers = r.tables(r.ref(model, 4), "buffers")
    for k, entry in enumerate(r.tables(r.ref(model, 6), "metadata")):  # Model.metadata: (name, buffer)
        name_ref = r.ref(entry, 0)
        if name_ref is None or r.string(name_ref, f"metadata[{k}].name") != METADATA_NAME:
            continue
        index = r.scalar_field(entry, 1, "I")
        if index >= len(buffers):
            raise _Bad(f"metadata[{k}] refers to buffer {index} of {len(buffers)}")
        start, length = r.vector(r.ref(buffers[index], 0), 1, f"buffers[{index}].data")
        m = _Reader(r.data[start:start + length])
        files: list[str] = []

        def names(t: _Table, field: int, what: str) -> None:
            for j, f in enumerate(m.tables(m.ref(t, field), what)):
                ref = m.ref(f, 0)
                if ref is not None:
                    files.append(m.string(ref, f"{what}[{j}].name"))

        root = m.table(m.scalar("I", 0), "metadata")
        names(root, 6, "metadata.associated_files")  # ModelMetadata.associated_files
        for s, sg in enumerate(m.tables(m.ref(root, 3), "metadata.subgraph_metadata")):
            names(sg, 4, f"metadata.subgraph[{s}].associated_files")
            for field in (2, 3):  # input_tensor_metadata, output_tensor_metadata
                for t, tm in enumerate(m.tables(m.ref(sg, field), f"metadata.subgraph[{s}].tensors")):
                    names(tm, 6, f"metadata.subgraph[{s}].tensor[{t}].associated_files")
        return files
    return []


def _packed_files(data: bytes, wanted: list[str]) -> None:
    """The zip archive after the flatbuffer holds every file the metadata names, each with a good CRC."""
    from .zipcheck import NotZip, first_damaged

    try:
        names, bad = first_damaged(data)
        missing = sorted(set(wanted) - set(names))
    except NotZip:
        missing, bad = sorted(set(wanted)), None
    if missing:
        raise _Bad(f"the metadata's packed files ({', '.join(missing)}) are missing or cut off: truncated")
    if bad is not None:
        raise _Bad(f"the metadata's packed file {bad} is damaged")


def _op_code_tables(data: bytes, name: str) -> tuple[_Reader, list[_Table]]:
    check_header(data, name)
    r = _Reader(data)
    try:
        return r, r.tables(r.ref(_model(r), 1), "operator_codes")  # Model.operator_codes
    except _Bad as e:
        raise _error(name, str(e)) from None


def verify(data: bytes, name: str) -> None:
    """Raise ModelError if `data` is not a whole TFLite flatbuffer (header, then every part an interpreter reads)."""
    check_header(data, name)
    try:
        r = _Reader(data)
        _walk(r)
        files = _metadata_files(r, _model(r))
        if files:
            _packed_files(data, files)
    except _Bad as e:
        raise _error(name, str(e)) from None


def read_op_codes(data: bytes, name: str = "model.tflite") -> list[OpCode]:
    """The operator codes of a .tflite flatbuffer, in the model's order."""
    r, tables = _op_code_tables(data, name)
    ops = []
    try:
        for k, t in enumerate(tables):
            deprecated = r.scalar_field(t, 0, "b")  # deprecated_builtin_code: int8, the only code before schema v3a
            builtin = r.scalar_field(t, 3, "i")  # builtin_code: int32, used for codes > 127
            code = max(deprecated, builtin)  # what tflite::GetBuiltinCode does
            version = r.scalar_field(t, 2, "i", default=1)
            custom_ref = r.ref(t, 1)
            custom = r.string(custom_ref, f"operator_codes[{k}].custom_code") if custom_ref is not None else None
            op_name = BUILTIN_NAMES[code] if 0 <= code < len(BUILTIN_NAMES) else f"BUILTIN_{code}"
            ops.append(OpCode(op_name, code, version, custom if op_name == "CUSTOM" else None))
    except _Bad as e:
        raise _error(name, str(e)) from None
    return ops


def version_field_positions(data: bytes, name: str = "model") -> list[int | None]:
    """Byte position of each operator code's version field (None when stored as the default 1).

    For the measurement behind `edgeclf.tflite_ops.TFLITE_RUNTIME_214_MAX`: it patches versions in place.
    """
    r, tables = _op_code_tables(data, name)
    return [r.field(t, 2) for t in tables]
