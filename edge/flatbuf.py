"""Structural check of a .tflite flatbuffer before any native loader sees it.

tflite-runtime 2.14 does not verify what it is given: a truncated model crashes the process (SIGSEGV) or
makes it allocate until it is killed. This walks the parts of the TFLite schema an interpreter
dereferences (Model -> subgraphs -> tensors/operators, operator codes, buffers) and checks every table,
vector, string and index is inside the file. It does not prove a model is sound (the child-process probe
in `edgeclf.edge.runtime` covers the rest); it turns the common damage — a cut-off copy — into one line.
"""

from __future__ import annotations

import struct

from edgeclf.errors import ModelError

SCHEMA_VERSION = 3


class _Bad(Exception):
    pass


class _Walker:
    def __init__(self, data: bytes):
        self.data = data
        self.n = len(data)

    def _scalar(self, fmt: str, pos: int) -> int:
        size = struct.calcsize(fmt)
        if pos < 0 or pos + size > self.n:
            raise _Bad(f"offset {pos} is past the end of the file ({self.n} bytes): truncated")
        return struct.unpack_from("<" + fmt, self.data, pos)[0]

    def table(self, pos: int, what: str) -> tuple[int, list[int]]:
        """(position, field offsets) of the table at `pos`, after checking its vtable and extent."""
        vtable = pos - self._scalar("i", pos)
        vt_size = self._scalar("H", vtable)
        obj_size = self._scalar("H", vtable + 2)
        if vt_size < 4 or vt_size % 2 or vtable + vt_size > self.n:
            raise _Bad(f"{what}: bad vtable")
        if pos + obj_size > self.n:
            raise _Bad(f"{what}: table ends past the end of the file ({self.n} bytes): truncated")
        fields = [self._scalar("H", vtable + 4 + 2 * i) for i in range((vt_size - 4) // 2)]
        if any(f >= obj_size for f in fields if f):
            raise _Bad(f"{what}: field outside its table")
        return pos, fields

    def field(self, t: tuple[int, list[int]], i: int) -> int | None:
        pos, fields = t
        return pos + fields[i] if i < len(fields) and fields[i] else None

    def ref(self, t: tuple[int, list[int]], i: int) -> int | None:
        p = self.field(t, i)
        return None if p is None else p + self._scalar("I", p)

    def scalar_field(self, t: tuple[int, list[int]], i: int, fmt: str, default: int = 0) -> int:
        p = self.field(t, i)
        return default if p is None else self._scalar(fmt, p)

    def vector(self, pos: int | None, elem: int, what: str) -> tuple[int, int]:
        """(first element position, length) of a vector, checked to fit in the file."""
        if pos is None:
            return 0, 0
        length = self._scalar("I", pos)
        if pos + 4 + length * elem > self.n:
            raise _Bad(f"{what}: {length} entries run past the end of the file ({self.n} bytes): truncated")
        return pos + 4, length

    def ints(self, pos: int | None, what: str) -> list[int]:
        start, length = self.vector(pos, 4, what)
        return list(struct.unpack_from(f"<{length}i", self.data, start)) if length else []

    def tables(self, pos: int | None, what: str) -> list[tuple[int, list[int]]]:
        start, length = self.vector(pos, 4, what)
        return [self.table(start + 4 * k + self._scalar("I", start + 4 * k), f"{what}[{k}]") for k in range(length)]


def _check(w: _Walker) -> None:
    model = w.table(w._scalar("I", 0), "model")
    version = w.scalar_field(model, 0, "I")
    if version != SCHEMA_VERSION:
        raise _Bad(f"schema version {version}, expected {SCHEMA_VERSION}")
    opcodes = w.tables(w.ref(model, 1), "operator_codes")
    buffers = w.tables(w.ref(model, 4), "buffers")
    for k, buf in enumerate(buffers):
        w.vector(w.ref(buf, 0), 1, f"buffers[{k}].data")
        offset, size = w.scalar_field(buf, 1, "Q"), w.scalar_field(buf, 2, "Q")
        if offset > 1 and offset + size > w.n:
            raise _Bad(f"buffers[{k}] ends at byte {offset + size}, past the end of the file ({w.n} bytes): truncated")
    subgraphs = w.tables(w.ref(model, 2), "subgraphs")
    if not subgraphs:
        raise _Bad("no subgraphs")
    for s, sg in enumerate(subgraphs):
        tensors = w.tables(w.ref(sg, 0), f"subgraphs[{s}].tensors")
        for k, t in enumerate(tensors):
            w.ints(w.ref(t, 0), f"tensor {k} shape")
            if w.scalar_field(t, 2, "I") >= max(len(buffers), 1):
                raise _Bad(f"tensor {k} refers to buffer {w.scalar_field(t, 2, 'I')} of {len(buffers)}")
            q = w.ref(t, 4)
            if q is not None:
                qt = w.table(q, f"tensor {k} quantization")
                w.vector(w.ref(qt, 2), 4, f"tensor {k} scale")
                w.vector(w.ref(qt, 3), 8, f"tensor {k} zero_point")
        n_t = len(tensors)
        for name, idx in (("inputs", 1), ("outputs", 2)):
            ids = w.ints(w.ref(sg, idx), f"subgraphs[{s}].{name}")
            if s == 0 and not ids:
                raise _Bad(f"the main subgraph has no {name}")
            if any(not 0 <= i < n_t for i in ids):
                raise _Bad(f"subgraphs[{s}].{name} refers to a tensor that does not exist")
        for k, op in enumerate(w.tables(w.ref(sg, 3), f"subgraphs[{s}].operators")):
            if w.scalar_field(op, 0, "I") >= len(opcodes):
                raise _Bad(f"operator {k} refers to an operator code that does not exist")
            for idx in (1, 2):
                if any(not -1 <= i < n_t for i in w.ints(w.ref(op, idx), f"operator {k} tensors")):
                    raise _Bad(f"operator {k} refers to a tensor that does not exist")
            opts = w.ref(op, 4)
            if opts is not None:
                w.table(opts, f"operator {k} options")
            w.vector(w.ref(op, 5), 1, f"operator {k} custom options")


def verify_tflite(data: bytes, name: str) -> None:
    """Raise ModelError ("not a valid TFLite model (...)") if the flatbuffer's structure is broken."""
    try:
        _check(_Walker(data))
    except _Bad as e:
        raise ModelError(f"{name}: not a valid TFLite model ({e}); re-copy the bundle or re-convert") from None
    except struct.error as e:  # pragma: no cover - every read is bounds-checked first
        raise ModelError(f"{name}: not a valid TFLite model ({e}); re-copy the bundle or re-convert") from None
