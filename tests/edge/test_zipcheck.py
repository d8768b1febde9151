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


def _bomb(size: int) -> tuple[bytes, int]:
    """An archive whose second member inflates to `size` MB of zeros; and where its deflate stream ends."""
    import zlib

    mb = b"\0" * (1 << 20)
    comp, raw, crc = zlib.compressobj(9, zlib.DEFLATED, -15), b"", 0
    for _ in range(size):
        raw += comp.compress(mb)
        crc = zlib.crc32(mb, crc)
    raw += comp.flush()
    buf = io.BytesIO()
    buf.write(PREFIX)
    with zipfile.ZipFile(buf, "a", compression=zipfile.ZIP_STORED) as z:
        z.writestr("labels.txt", "x")
    data = buf.getvalue()
    # Append the bomb as a second member, its headers written here (zipfile would inflate it to write it).
    end = data.rfind(b"PK\x05\x06")
    n, cd_size, cd_offset = struct.unpack_from("<HII", data, end + 10)
    base = end - cd_size - cd_offset
    name = b"bomb.bin"
    local = struct.pack("<4s5H3I2H", b"PK\x03\x04", 20, 0, 8, 0, 0, crc, len(raw), size << 20, len(name), 0) + name
    central = struct.pack("<4s6H3I5H2I", b"PK\x01\x02", 20, 20, 0, 8, 0, 0, crc, len(raw), size << 20, len(name), 0,
                          0, 0, 0, 0, cd_offset) + name
    members = data[base:base + cd_offset] + local + raw
    cd = data[base + cd_offset:end] + central
    bomb = data[:base] + members + cd + struct.pack("<4s4H2IH", b"PK\x05\x06", 0, 0, n + 1, n + 1, len(cd),
                                                      len(members), 0)
    return bomb, base + len(members)


@pytest.mark.parametrize("size", [48, 256])
def test_a_deflate_bomb_costs_no_memory(size: int) -> None:
    """A member that inflates to 48 MB is read in 64 KB pieces: its answer and its damage without the 48 MB
    (Python's allocations traced); one of 256 MB from a quarter of a megabyte is over the budget: damaged,
    without being inflated."""
    import tracemalloc

    bomb, stream_end = _bomb(size)
    assert _with_zipfile(bomb) == (["labels.txt", "bomb.bin"], None)  # a well-formed zip, as zipfile reads it
    tracemalloc.start()
    try:
        names, bad = first_damaged(bomb)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert names == ["labels.txt", "bomb.bin"] and peak < 4 << 20, peak
    if size > 64:
        assert bad == "bomb.bin"
        return
    assert bad is None
    flipped = bytearray(bomb)
    flipped[stream_end - 20] ^= 0x01  # inside the bomb's deflate stream, near its end
    assert first_damaged(bytes(flipped))[1] == _with_zipfile(bytes(flipped))[1] == "bomb.bin"
