"""Read an image file as the edge sees it: RGB-able BGR uint8 via OpenCV, with clear errors.

Checks happen before a full decode: empty files, files that are not images (HTML, text), truncated
PNG/JPEG, and images over the pixel cap (decompression bombs) are refused from their header. Bytes after an
image's end marker are not truncation: PNG chunks and JPEG segments are followed to the end marker.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from .errors import DataError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp")
DEFAULT_MAX_PIXELS = 50_000_000  # ~7000x7000; a 300x300 training image is 90,000


def sniff_format(head: bytes) -> str | None:
    """The image format from the first bytes, or None."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if head.startswith(b"BM"):
        return "bmp"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    return None


def header_size(data: bytes, fmt: str) -> tuple[int, int] | None:
    """(width, height) read from the header without decoding, or None when the header does not say."""
    try:
        if fmt == "png":
            return struct.unpack(">II", data[16:24])
        if fmt == "gif":
            return struct.unpack("<HH", data[6:10])
        if fmt == "bmp":
            w, h = struct.unpack("<ii", data[18:26])
            return abs(w), abs(h)
        if fmt == "webp":
            chunk = data[12:16]
            if chunk == b"VP8X":
                w = int.from_bytes(data[24:27], "little") + 1
                h = int.from_bytes(data[27:30], "little") + 1
                return w, h
            if chunk == b"VP8 ":
                w, h = struct.unpack("<HH", data[26:30])
                return w & 0x3FFF, h & 0x3FFF
            if chunk == b"VP8L":
                b = int.from_bytes(data[21:25], "little")
                return (b & 0x3FFF) + 1, ((b >> 14) & 0x3FFF) + 1
            return None
        if fmt == "jpeg":
            i = 2
            while i + 9 < len(data):
                if data[i] != 0xFF:
                    i += 1
                    continue
                marker = data[i + 1]
                if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7 or marker == 0xFF:
                    i += 1 if marker == 0xFF else 2
                    continue
                (length,) = struct.unpack(">H", data[i + 2:i + 4])
                if marker in (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF):
                    h, w = struct.unpack(">HH", data[i + 5:i + 9])
                    return w, h
                i += 2 + length
            return None
    except struct.error:
        return None
    return None


def _truncated(data: bytes, fmt: str) -> bool:
    """True when the image ends before its end marker. Bytes after the marker (phone "motion photos", tools
    that append metadata) are allowed: the image's own structure is followed, not the file's last bytes."""
    if fmt == "png":
        return _png_end(data) is None
    if fmt == "jpeg":
        return _jpeg_end(data) is None
    return False


def _png_end(data: bytes) -> int | None:
    """Offset just past the IEND chunk, following the chunk lengths from the signature; None if cut short."""
    i, n = 8, len(data)
    while i + 12 <= n:
        length = int.from_bytes(data[i:i + 4], "big")
        kind = data[i + 4:i + 8]
        end = i + 12 + length
        if end > n:
            return None
        if kind == b"IEND":
            return end
        i = end
    return None


def _jpeg_end(data: bytes) -> int | None:
    """Offset just past the EOI marker that ends the first image's scans; None if cut short.

    Marker segments are skipped by their lengths up to the first SOS; scan data never holds 0xFFD9 (byte
    stuffing), so the first one after the SOS is this image's end, whatever follows it. An EXIF thumbnail's
    EOI sits inside an APP1 segment and is skipped with it."""
    i, n = 2, len(data)
    while i + 4 <= n:
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:
            i += 1
            continue
        if marker == 0xD9:
            return i + 2
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:
            i += 2
            continue
        length = int.from_bytes(data[i + 2:i + 4], "big")
        if marker == 0xDA:  # start of scan: the rest is entropy-coded data and more scans
            eoi = data.find(b"\xff\xd9", i + 2 + length)
            return None if eoi < 0 else eoi + 2
        i += 2 + length
    return None


def describe_bytes(head: bytes) -> str:
    """A short guess at what a non-image file is, for error messages."""
    text = head.lstrip()[:64].lower()
    if text.startswith((b"<!doctype html", b"<html")):
        return "an HTML page"
    if text.startswith(b"version https://git-lfs"):
        return "a Git LFS pointer"
    if not head:
        return "empty"
    try:
        head.decode("utf-8")
        return "text"
    except UnicodeDecodeError:
        return "unrecognised binary data"


def check_image_bytes(data: bytes, name: str, max_pixels: int = DEFAULT_MAX_PIXELS) -> str:
    """Raise DataError naming `name` if `data` cannot be a usable image; return its format."""
    if not data:
        raise DataError(f"{name}: empty file (0 bytes); expected an image; remove it or re-export it")
    fmt = sniff_format(data[:32])
    if fmt is None:
        raise DataError(f"{name}: not an image ({describe_bytes(data[:256])}); expected JPEG, PNG, BMP, GIF or WebP; "
                        "remove it from the folder")
    size = header_size(data, fmt)
    if size is None:
        raise DataError(f"{name}: {fmt.upper()} header is unreadable; the file is corrupt; re-export or remove it")
    w, h = size
    if w <= 0 or h <= 0:
        raise DataError(f"{name}: {fmt.upper()} header says {w}x{h}; the file is corrupt; re-export or remove it")
    if w * h > max_pixels:
        raise DataError(f"{name}: {w}x{h} = {w * h:,} pixels is over the cap of {max_pixels:,}; "
                        "downscale it, or raise --max-pixels if it is trusted")
    if _truncated(data, fmt):
        raise DataError(f"{name}: {fmt.upper()} file is truncated; re-copy or remove it")
    return fmt


def decode_bgr(data: bytes, name: str = "image", max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode image bytes to 3-channel BGR uint8 (OpenCV order), after the header checks."""
    import cv2

    check_image_bytes(data, name, max_pixels)
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if img is None or img.ndim != 3 or img.shape[2] != 3:
        raise DataError(f"{name}: OpenCV could not decode it; the file is corrupt or in an unsupported variant; "
                        "re-export it as PNG or JPEG")
    return img


def read_bgr(path: str | Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise DataError(f"{path}: cannot be read ({e.strerror}); check the path and its permissions") from None
    return decode_bgr(data, str(path), max_pixels)


def read_rgb(path: str | Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """The file as RGB uint8, HxWx3: what the training pipeline decodes too."""
    return read_bgr(path, max_pixels)[:, :, ::-1]
