"""The trainer's data check: class folders, broken and odd images, decompression bombs (issue 7 cases 6-8)."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from edgeclf.errors import DataError
from edgeclf.imageio import read_rgb
from edgeclf.train.data import check_file, find_classes, load_dataset

from .conftest import write_color_folders


def _png_header_only(w: int, h: int) -> bytes:
    """A PNG whose IHDR claims w x h, with one tiny IDAT and IEND: a decompression bomb's header."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def write_odd_files(d: Path) -> dict[str, bool]:
    """Broken and unusual images in class folder `d`; maps file name -> should be usable."""
    rng = np.random.default_rng(1)
    img = rng.integers(0, 255, (40, 56, 3), np.uint8)
    ok, jpg = cv2.imencode(".jpg", img)
    (d / "zero-0.jpg").write_bytes(b"")
    (d / "text-0.png").write_text("this is not a picture\n")
    (d / "html-0.jpg").write_text("<!DOCTYPE html><html><body>404</body></html>")
    (d / "trunc-0.jpg").write_bytes(jpg.tobytes()[: len(jpg) // 2])
    cv2.imwrite(str(d / "sixteen-0.png"), img.astype(np.uint16) * 257)
    cv2.imwrite(str(d / "gray-0.png"), cv2.cvtColor(img, cv2.COLOR_BGR2GRAY))
    cv2.imwrite(str(d / "rgba-0.png"), cv2.cvtColor(img, cv2.COLOR_BGR2BGRA))
    cv2.imwrite(str(d / "anim-0.gif"), img)
    cv2.imwrite(str(d / "photo-0.jpg"), img)
    (d / "bomb-0.png").write_bytes(_png_header_only(100_000, 100_000))
    (d / "notes.txt").write_text("ignored: not an image extension")
    return {"zero-0.jpg": False, "text-0.png": False, "html-0.jpg": False, "trunc-0.jpg": False,
            "bomb-0.png": False, "sixteen-0.png": True, "gray-0.png": True, "rgba-0.png": True,
            "anim-0.gif": True, "photo-0.jpg": True}


def test_broken_files_are_reported_and_skipped(tmp_path: Path) -> None:
    write_color_folders(tmp_path, n_per_class=4, size=24)
    expect = write_odd_files(tmp_path / "red")
    ds = load_dataset(tmp_path)
    bad = {Path(b.file).name: b.reason for b in ds.bad}
    usable = {Path(f).name for f, _ in ds.items}
    for name, good in expect.items():
        assert (name in usable) == good and (name in bad) != good, name
    assert "empty file" in bad["zero-0.jpg"] and "not an image (text)" in bad["text-0.png"]
    assert "HTML" in bad["html-0.jpg"] and "truncated" in bad["trunc-0.jpg"]
    assert "over the cap" in bad["bomb-0.png"]
    assert ds.ignored == ("red/notes.txt",)
    assert ds.converted == {"16-bit RGB -> RGB": 1, "grayscale -> RGB": 1, "RGBA -> RGB": 1, "palette -> RGB": 1}
    report = ds.report()
    assert {b["file"] for b in report["bad"]} == {f"red/{n}" for n, g in expect.items() if not g}
    assert report["per_class"] == {"blue": 4, "red": 9}


def test_strict_makes_broken_files_fatal(tmp_path: Path) -> None:
    write_color_folders(tmp_path, n_per_class=4, size=24)
    write_odd_files(tmp_path / "red")
    with pytest.raises(DataError, match=r"5 broken image\(s\) and --strict is on: .*zero-0.jpg: empty file"):
        load_dataset(tmp_path, strict=True)


def test_kept_odd_images_decode_as_the_edge_sees_them(tmp_path: Path) -> None:
    """What the TF pipeline decodes equals OpenCV's RGB (the edge) for every kept odd format."""
    from edgeclf.train.tfdata import decode_rgb
    import tensorflow as tf

    (tmp_path / "c").mkdir()
    expect = write_odd_files(tmp_path / "c")
    for name, good in expect.items():
        if good:
            ours = decode_rgb(tf.io.read_file(str(tmp_path / "c" / name))).numpy()
            edge = read_rgb(tmp_path / "c" / name)
            assert ours.dtype == np.uint8 and ours.shape == edge.shape
            assert np.abs(ours.astype(int) - edge.astype(int)).mean() <= 2.0, name


def test_bomb_is_refused_from_its_header_without_decoding(tmp_path: Path, monkeypatch) -> None:
    f = tmp_path / "bomb.png"
    f.write_bytes(_png_header_only(100_000, 100_000))

    def no_decode(*a, **k):  # a full decode of 10^10 pixels must never be attempted
        raise AssertionError("decoded a decompression bomb")

    monkeypatch.setattr(cv2, "imdecode", no_decode)
    with pytest.raises(DataError, match="10,000,000,000 pixels is over the cap of 50,000,000"):
        check_file(f, "bomb.png", 50_000_000)


def test_max_pixels_applies_to_normal_images(tmp_path: Path) -> None:
    write_color_folders(tmp_path, n_per_class=3, size=24)
    with pytest.raises(DataError, match="have no usable images"):
        load_dataset(tmp_path, max_pixels=24 * 24 - 1)


def test_empty_dir_one_class_and_empty_class_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="found no images in sub-folders; expected one sub-folder per class"):
        find_classes(tmp_path)
    with pytest.raises(DataError, match="no such folder"):
        find_classes(tmp_path / "missing")
    write_color_folders(tmp_path, n_per_class=3, size=24, classes=("red",))
    with pytest.raises(DataError, match=r"found 1 class \('red'\); a classifier needs at least 2"):
        find_classes(tmp_path)
    (tmp_path / "blue").mkdir()
    (tmp_path / "blue" / "readme.txt").write_text("x")
    with pytest.raises(DataError, match="class folder\\(s\\) 'blue' hold no images"):
        find_classes(tmp_path)


def test_unicode_and_space_class_names(tmp_path: Path) -> None:
    write_color_folders(tmp_path, n_per_class=3, size=24, classes=("große Katze", "chien noir 🐕"))
    ds = load_dataset(tmp_path)
    assert ds.labels == ("chien noir 🐕", "große Katze")
    assert len(ds.items) == 6 and not ds.bad


def test_validation_folder_must_have_the_same_classes(tmp_path: Path) -> None:
    write_color_folders(tmp_path / "val", n_per_class=2, size=24, classes=("blue", "green"))
    with pytest.raises(DataError, match=r"classes differ .*missing \['red'\], extra \['green'\]"):
        load_dataset(tmp_path / "val", labels=("blue", "red"))
