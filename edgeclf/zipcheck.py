"""Is the zip archive at the end of some bytes whole? (What a .tflite file with metadata carries after its
flatbuffer: the associated files, labels.txt and the like.)

`edgeclf.tflite_file.verify` runs this on every model the camera loads. The standard library's `zipfile`
answers the same question, but importing it costs a process about 1 MB of peak RSS (issue 14: the camera's
memory), so the common case is read here with `struct` and `zlib` (both loaded anyway): the end-of-central-
directory record, each member's central and local headers, and each member's CRC-32 over its stored or
deflated bytes. Anything else (zip64, encryption, another compression method) is handed to `zipfile`, which
reads every zip; tests/edge/test_zipcheck.py checks both give the same answers.
"""

from __future__ import annotations

import struct
import zlib

_END = b"PK\x05\x06"
_END_SIZE = 22
_CENTRAL = struct.Struct("<4s6H3I5H2I")  # central directory file header, 46 bytes
_LOCAL = struct.Struct("<4s5H3I2H")  # local file header, 30 bytes
_METHODS = (0, 8)  # stored, deflated


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
        content = _member(data, base + local, name, csize, usize, method, end)
        if damaged is None and (content is None or zlib.crc32(content) != crc):
            damaged = name
    if pos > end:
        raise NotZip("central directory runs past its end")
    return names, damaged


def _member(data: bytes, local: int, name: str, csize: int, usize: int, method: int, end: int) -> bytes | None:
    """A member's bytes, or None where `zipfile` finds it damaged (its local header is not its own)."""
    if local + _LOCAL.size > len(data):
        return None
    lsig, _need, flags, _m, _t, _d, _crc, _cs, _us, lnlen, lelen = _LOCAL.unpack_from(data, local)
    lname = data[local + _LOCAL.size:local + _LOCAL.size + lnlen]
    if lsig != b"PK\x03\x04" or lname.decode("utf-8" if flags & 0x800 else "cp437", "replace") != name:
        return None
    start = local + _LOCAL.size + lnlen + lelen
    if start + csize > len(data):
        raise NotZip("member runs past the end")  # zipfile: EOFError
    body = data[start:start + csize]
    if method == 8:  # as zipfile reads it: a stream, up to the member's size
        try:
            d = zlib.decompressobj(-15)
            body = d.decompress(body) + d.flush()
        except zlib.error:
            return None
    return body[:usize]  # a shorter one fails its CRC, as in zipfile


def _with_zipfile(data: bytes) -> tuple[list[str], str | None]:
    import io
    import zipfile

    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            return z.namelist(), z.testzip()
    except (zipfile.BadZipFile, EOFError, ValueError, NotImplementedError, RuntimeError, zlib.error) as e:
        raise NotZip(str(e)) from None
