"""edgeclf.tflite_file, the one reader of .tflite bytes: damaged or foreign bytes give one clear ModelError,
the same line whichever caller asks (bundle check, the edge's structural check, the op-code reader)."""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import pytest

from edgeclf import tflite_file
from edgeclf.bundle import check_tflite_bytes
from edgeclf.edge.flatbuf import verify_tflite
from edgeclf.errors import ModelError
from edgeclf.tflite_ops import tflite_runtime_214_verdict

from .fixtures import REPO

pytestmark = pytest.mark.tflite_runtime

NAME = "b/model.tflite"


def _model(bundles, name: str = "b48-int8") -> bytes:
    return (bundles.root / name / "model.tflite").read_bytes()


def _line(call, data: bytes) -> str:
    with pytest.raises(ModelError) as e:
        call(data, NAME)
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(f"{NAME}: not a valid TFLite model"), msg
    assert msg.endswith("re-copy the bundle or re-convert"), msg
    return msg


READERS = {"verify": tflite_file.verify, "edge": verify_tflite, "op codes": tflite_file.read_op_codes,
           "verdict": tflite_runtime_214_verdict}


@pytest.mark.parametrize("kind,says", [
    ("empty", "(0 bytes)"), ("eight", "(8 bytes)"), ("html", "it is an HTML page"),
    ("lfs", "it is a Git LFS pointer (run `git lfs pull`)"), ("root", "root offset"),
])
def test_foreign_bytes_give_the_same_line_from_every_caller(bundles, kind: str, says: str) -> None:
    good = _model(bundles)
    data = {"empty": b"", "eight": good[:8],
            "html": b"<!DOCTYPE html><html><head><title>404</title></head><body>Not Found</body></html>\n",
            "lfs": b"version https://git-lfs.github.com/spec/v1\noid sha256:" + b"a" * 64 + b"\nsize 21560\n",
            "root": (len(good) + 8).to_bytes(4, "little") + good[4:40]}[kind]
    lines = {what: _line(call, data) for what, call in {**READERS, "bundle": check_tflite_bytes}.items()}
    assert len(set(lines.values())) == 1, lines
    assert says in lines["verify"]


def test_a_cut_off_copy_gives_one_line_naming_the_truncation(bundles) -> None:
    good = _model(bundles)
    for call in READERS.values():
        call(good, NAME)
    for n in range(16, len(good), 211):
        msg = _line(tflite_file.verify, good[:n])
        assert "truncated" in msg or "past" in msg or "no subgraphs" in msg, (n, msg)
        assert _line(verify_tflite, good[:n]) == msg
    # the op codes sit near the start: a short cut already loses them
    assert "truncated" in _line(tflite_file.read_op_codes, good[:64])


def test_garbage_never_escapes_as_another_exception(bundles) -> None:
    """Random bytes behind a valid header, and random byte flips of a real model: accepted or one ModelError,
    never an IndexError/struct.error/MemoryError from a wild offset."""
    good = _model(bundles, "rgb32-float32")
    rng = random.Random(13)
    cases = [(16).to_bytes(4, "little") + b"TFL3" + rng.randbytes(rng.randrange(8, 4000)) for _ in range(300)]
    for _ in range(300):
        data = bytearray(good)
        for _ in range(rng.randrange(1, 8)):
            data[rng.randrange(8, min(len(data), 2048))] = rng.randrange(256)
        cases.append(bytes(data))
    refused = 0
    for data in cases:
        for call in (tflite_file.verify, tflite_file.read_op_codes):
            try:
                call(data, NAME)
            except ModelError as e:
                assert str(e).startswith(f"{NAME}: not a valid TFLite model ("), e
                refused += 1
    assert refused >= 300  # every random-bytes case at least


def test_op_codes_of_a_real_model(bundles) -> None:
    ops = tflite_file.read_op_codes(_model(bundles), NAME)
    names = {op.name for op in ops}
    assert {"CONV_2D", "FULLY_CONNECTED"} <= names, names
    positions = tflite_file.version_field_positions(_model(bundles))
    assert len(positions) == len(ops)
    data = _model(bundles)
    for op, pos in zip(ops, positions):
        assert op.version == (1 if pos is None else int.from_bytes(data[pos:pos + 4], "little", signed=True))


def test_one_home_for_the_format() -> None:
    """Only tflite_file.py spells the identifier or walks flatbuffer vtables; the others call it."""
    owners = []
    for folder in ("edgeclf", "edge", "bench", "convert", "train"):
        for f in sorted((REPO / folder).rglob("*.py")):
            text = f.read_text("utf-8")
            if 'b"TFL3"' in text or "vtable" in text:
                owners.append(f.relative_to(REPO).as_posix())
    assert owners == ["edgeclf/tflite_file.py"]


def test_the_reader_is_standard_library_only() -> None:
    code = ("import sys, edgeclf.tflite_file, edgeclf.tflite_ops, edgeclf.edge.flatbuf; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'numpy', 'cv2', 'tensorflow', 'flatbuffers'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=Path(REPO))
    assert out.returncode == 0 and out.stdout.strip() == "[]", out
