"""edgeclf.zipcheck reads the zip after a flatbuffer without `zipfile` (issue 14: the camera's memory) and gives
the answers `zipfile` gives: for whole archives (stored, deflated, with a comment, with bytes before them), for
every cut, for flipped bytes, and for the zips it leaves to `zipfile` (zip64)."""

from __future__ import annotations

import io
import random
import subprocess
import struct
import sys
import zipfile

import pytest

from edgeclf.zipcheck import NotZip, _with_zipfile, first_damaged

from .fixtures import REPO

PREFIX = b"\x1c\x00\x00\x00TFL3" + bytes(range(256)) * 8  # stands for the flatbuffer before the archive


def _zip(compression: int, comment: bytes = b"", zip64: bool = False) -> bytes:
    buf = io.BytesIO()
    buf.write(PREFIX)
    with zipfile.ZipFile(buf, "a", compression=compression) as z:
        z.writestr("labels.txt", "horses\nhumans\n" * 40)
        with z.open("second.bin", "w", force_zip64=zip64) as f:
            f.write(random.Random(0).randbytes(3000))
        z.comment = comment
    return buf.getvalue()


def _answer(fn, data: bytes):  # noqa: ANN001, ANN202
    try:
        return fn(data)
    except NotZip:
        return "not a zip"


def _refused(answer) -> bool:  # noqa: ANN001
    return answer == "not a zip" or answer[1] is not None


CASES = {"stored": _zip(zipfile.ZIP_STORED), "deflated": _zip(zipfile.ZIP_DEFLATED),
         "comment": _zip(zipfile.ZIP_DEFLATED, b"written by a tool"), "zip64": _zip(zipfile.ZIP_STORED, zip64=True)}


@pytest.mark.parametrize("name", sorted(CASES))
def test_whole_archives_read_as_zipfile_reads_them(name: str) -> None:
    data = CASES[name]
    assert first_damaged(data) == _with_zipfile(data) == (["labels.txt", "second.bin"], None)
    assert first_damaged(data + b"trailing bytes") == (["labels.txt", "second.bin"], None)


@pytest.mark.parametrize("name", sorted(CASES))
def test_every_damage_gets_zipfiles_answer(name: str) -> None:
    data = CASES[name]
    start = len(PREFIX)
    rng = random.Random(name)
    cuts = sorted({*range(len(data) - 120, len(data)), *rng.sample(range(start, len(data)), 150)})
    for cut in cuts:
        assert _answer(first_damaged, data[:cut]) == _answer(_with_zipfile, data[:cut]), cut
    found = same = 0
    for pos in rng.sample(range(start, len(data)), 200):
        flipped = bytearray(data)
        flipped[pos] ^= 0x5A
        want = _answer(_with_zipfile, bytes(flipped))
        got = _answer(first_damaged, bytes(flipped))
        # Never whole where zipfile refuses it. A flipped header field that zipfile ignores (a version, an extra
        # length) may make ours refuse the archive: damaged is damaged, and the model is refused either way.
        assert _refused(got) or not _refused(want), pos
        same += got == want
        found += got != "not a zip" and got[1] is not None
    assert found > 50 and same > 150  # most flips land in a member's bytes and are found


def test_a_real_model_with_metadata_and_no_zipfile_import(bundles) -> None:  # noqa: ANN001
    """A bundle `edgeclf convert` wrote (labels.txt packed): verified in a process that never imports zipfile."""
    model = next(bundles.root.glob("*/model.tflite"))
    data = model.read_bytes()
    names, bad = first_damaged(data)
    assert "labels.txt" in names and bad is None and (names, bad) == _with_zipfile(data)
    code = ("import sys; from edgeclf.tflite_file import verify; verify(open(sys.argv[1], 'rb').read(), 'm'); "
            "print('zipfile' in sys.modules)")
    r = subprocess.run([sys.executable, "-c", code, str(model)], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.strip() == "False", r.stderr
    local = data.rfind(b"PK\x03\x04")  # the last member's local header, then its bytes
    nlen, elen = struct.unpack_from("<2H", data, local + 26)
    broken = bytearray(data)
    broken[local + 30 + nlen + elen] ^= 0x01
    assert first_damaged(bytes(broken))[1] == _with_zipfile(bytes(broken))[1] is not None
