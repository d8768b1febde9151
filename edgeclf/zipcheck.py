"""Is the zip archive at the end of some bytes whole? (What a .tflite file with metadata carries after its
flatbuffer: the associated files, labels.txt and the like.)

`edgeclf.tflite_file.verify` runs this on every model the camera loads. The standard library's `zipfile`
answers the same question, but importing it costs a process about 1 MB of peak RSS (issue 14: the camera's
memory), so the common case is read here with `struct` and `zlib` (both loaded anyway): the end-of-central-
directory record, each member's central and local headers, and each member's CRC-32 over its stored or
deflated bytes, inflated in 64 KB pieces. Anything else (zip64, encryption, another compression method) is
handed to `zipfile`, which reads every zip; tests/edge/test_zipcheck.py checks both give the same answers.
Unlike `zipfile`, members that would inflate past 64 MB plus 16 bytes per byte of the file in all (a zip bomb,
or thousands of entries pointing at one member) are called damaged without being inflated.
"""

from __future__ import annotations

import struct
import zlib

_END = b"PK\x05\x06"
_END_SIZE = 22
_CENTRAL = struct.Struct("<4s6H3I5H2I")  # central directory file header, 46 bytes
_LOCAL = struct.Struct("<4s5H3I2H")  # local file header, 30 bytes
_METHODS = (0, 8)  # stored, deflated
_PIECE = 1 << 16
_BUDGET = 64 << 20  # bytes all members may inflate to, beyond 16 per byte of the file: labels.txt is a few KB


class NotZip(Exception):
    """No whole zip archive at the end of the bytes (none, or one cut off)."""


def first_damaged(data: bytes) -> tuple[list[str], str | None]:
    """(the member names, the first member whose bytes do not match its CRC or None); NotZip if there is no
    whole archive at the end of `data`."""
    try:
        return _read(data)
    except _Other:
        return _with_zipfile(data)
    except (struct.error, IndexError, UnicodeDecodeError) as e:
        raise NotZip(str(e)) from None


class _Other(Exception):
    """A zip this module does not read itself."""


def _read(data: bytes) -> tuple[list[str], str | None]:
    end = data.rfind(_END, max(0, len(data) - _END_SIZE - 0xFFFF))
    if end < 0 or len(data) < end + _END_SIZE:
        raise NotZip("no end of central directory")
    disk, cd_disk, n_here, n, cd_size, cd_offset, _comment = struct.unpack_from("<4H2IH", data, end + 4)
    if 0xFFFF in (n_here, n) or 0xFFFFFFFF in (cd_size, cd_offset) or disk or cd_disk or n_here != n:
        raise _Other  # zip64 or a split archive
    base = end - cd_size - cd_offset  # where the archive starts: after the flatbuffer
    if base < 0:
        raise NotZip("central directory before the start")
    pos, names, damaged = base + cd_offset, [], None
    spent, budget = 0, _BUDGET + 16 * len(data)
    for _ in range(n):
        (sig, _made, need, flags, method, _t, _d, crc, csize, usize, nlen, elen, clen, _disk, _ia, _ea,
         local) = _CENTRAL.unpack_from(data, pos)
        if sig != b"PK\x01\x02":
            raise NotZip("bad central directory entry")
        name = data[pos + 46:pos + 46 + nlen].decode("utf-8" if flags & 0x800 else "cp437")
        pos += 46 + nlen + elen + clen
        if flags & 0x1 or method not in _METHODS or need > 63:
            raise _Other  # encrypted, compressed another way, or a version zipfile refuses
        names.append(name)
        spent += usize
        if spent > budget:  # many members, or overlapping ones, that inflate without end: damaged, not read
            damaged = damaged or name
        elif damaged is None and _member_crc(data, base + local, name, csize, usize, method) != crc:
            damaged = name
    if pos > end:
        raise NotZip("central directory runs past its end")
    return names, damaged


def _member_crc(data: bytes, local: int, name: str, csize: int, usize: int, method: int) -> int | None:
    """The CRC-32 of a member's bytes as `zipfile` reads them (stored, or inflated in 64 KB pieces up to the
    member's size: a deflate bomb costs no memory), or None where `zipfile` finds the member damaged."""
    if local + _LOCAL.size > len(data):
        return None
    lsig, _need, flags, _m, _t, _d, _crc, _cs, _us, lnlen, lelen = _LOCAL.unpack_from(data, local)
    lname = data[local + _LOCAL.size:local + _LOCAL.size + lnlen]
    if lsig != b"PK\x03\x04" or lname.decode("utf-8" if flags & 0x800 else "cp437", "replace") != name:
        return None
    start = local + _LOCAL.size + lnlen + lelen
    if start + csize > len(data):
        raise NotZip("member runs past the end")  # zipfile: EOFError
    body = memoryview(data)[start:start + csize]
    if method == 0:
        return zlib.crc32(body[:usize])  # a shorter one fails its CRC, as in zipfile
    crc, left, d = 0, usize, zlib.decompressobj(-15)
    try:
        for i in range(0, len(body), _PIECE):  # the input in pieces, each piece's output in pieces
            pending: bytes | memoryview = body[i:i + _PIECE]
            while pending and left > 0 and not d.eof:
                out = d.decompress(pending, min(left, _PIECE))[:left]
                pending = d.unconsumed_tail
                crc, left = zlib.crc32(out, crc), left - len(out)
            if left <= 0 or d.eof:
                return crc
        return zlib.crc32(d.flush()[:left], crc)  # the input ran out first: what zipfile adds then
    except zlib.error:
        return None


def _with_zipfile(data: bytes) -> tuple[list[str], str | None]:
    import io
    import zipfile

    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            return z.namelist(), z.testzip()
    except (zipfile.BadZipFile, EOFError, ValueError, NotImplementedError, RuntimeError, zlib.error) as e:
        raise NotZip(str(e)) from None
