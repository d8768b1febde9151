"""Find the class folders and check every image before training, the way the edge will read it.

Each file is decoded with OpenCV (`edgeclf.imageio`, what the edge uses) and with TensorFlow (what the
training pipeline uses); both must succeed and agree. Broken files are reported and left out, so
training never dies mid-epoch on one. Decoding runs in threads (both decoders release the GIL).
"""

from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from edgeclf.errors import DataError
from edgeclf.imageio import DEFAULT_MAX_PIXELS, IMAGE_EXTENSIONS, decode_bgr

log = logging.getLogger(__name__)

AGREE_MEAN_ABS = 2.0  # mean |OpenCV - TensorFlow| per pixel above which the decoders disagree


@dataclass(frozen=True)
class Bad:
    file: str  # relative to the data dir
    reason: str


@dataclass(frozen=True)
class Dataset:
    """The usable images of a folder: (relative path, label index), sorted, plus what was left out."""

    root: Path
    labels: tuple[str, ...]
    items: tuple[tuple[str, int], ...]
    bad: tuple[Bad, ...] = ()
    ignored: tuple[str, ...] = ()  # files without an image extension
    converted: dict[str, int] = field(default_factory=dict)  # e.g. {"RGBA -> RGB": 1027}

    def counts(self) -> dict[str, int]:
        c = {name: 0 for name in self.labels}
        for _, i in self.items:
            c[self.labels[i]] += 1
        return c

    def report(self) -> dict[str, Any]:
        return {
            "data_dir": str(self.root), "labels": list(self.labels), "usable": len(self.items),
            "per_class": self.counts(), "converted": dict(self.converted),
            "bad": [{"file": b.file, "reason": b.reason} for b in self.bad],
            "ignored": list(self.ignored),
        }


def _refuse_looping_links(root: Path, subdirs: list[Path]) -> None:
    """A class folder that is a link to DATA_DIR (`x -> .`), to a folder holding it, or to another class folder
    would make a class of every image (or of another class's): refused, naming the link."""
    top = root.resolve()
    real = {d: d.resolve() for d in subdirs}
    for d in subdirs:
        if not d.is_symlink():
            continue
        target = real[d]
        if target == top or target in top.parents:
            raise DataError(f"{d}: is a link to {target}, which holds DATA_DIR itself; a class folder holds one "
                            "class's images; remove the link or point it at that class's folder")
        inside = [o.name for o in subdirs if o != d and (real[o] == target or real[o] in target.parents
                                                          or target in real[o].parents)]
        if inside:
            raise DataError(f"{d}: is a link to {target}, which overlaps the class folder(s) {', '.join(inside)}; "
                            "an image must belong to one class; remove the link")


def find_classes(root: Path) -> tuple[tuple[str, ...], list[tuple[str, int]], list[str]]:
    """Class names (sorted sub-folders holding image files) and every candidate file under them."""
    if not root.is_dir():
        raise DataError(f"{root}: no such folder; expected a folder with one sub-folder of images per class")
    subdirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    _refuse_looping_links(root, subdirs)
    files: list[tuple[str, int]] = []
    ignored: list[str] = []
    labels: list[str] = []
    empty: list[str] = []
    for d in subdirs:
        found = []
        for dirpath, dirnames, names in os.walk(d):
            dirnames[:] = sorted(n for n in dirnames if not n.startswith("."))
            for name in sorted(names):
                if name.startswith("."):
                    continue
                rel = Path(dirpath, name).relative_to(root).as_posix()
                (found if name.lower().endswith(IMAGE_EXTENSIONS) else ignored).append(rel)
        if found:
            files += [(f, len(labels)) for f in found]
            labels.append(d.name)
        else:
            empty.append(d.name)
    exts = ", ".join(IMAGE_EXTENSIONS)
    if not labels:
        raise DataError(f"{root}: found no images in sub-folders; expected one sub-folder per class holding "
                        f"{exts} files")
    if empty:
        raise DataError(f"{root}: class folder(s) {', '.join(repr(e) for e in empty)} hold no images ({exts}); "
                        "add images or remove the folder")
    if len(labels) < 2:
        raise DataError(f"{root}: found 1 class ({labels[0]!r}); a classifier needs at least 2 class sub-folders")
    return tuple(labels), files, ignored


def _png_mode(data: bytes) -> str:
    depth, color = data[24], data[25]
    kind = {0: "grayscale", 2: "RGB", 3: "palette", 4: "grayscale+alpha", 6: "RGBA"}.get(color, "RGB")
    return f"{depth}-bit {kind}" if depth == 16 else kind


def _jpeg_mode(data: bytes) -> str:
    i = data.find(b"\xff\xc0")
    if i < 0:
        i = data.find(b"\xff\xc2")
    return "grayscale" if i >= 0 and len(data) > i + 9 and data[i + 9] == 1 else "RGB"


def _mode(data: bytes) -> str:
    if data.startswith(b"\x89PNG"):
        return _png_mode(data)
    if data.startswith(b"\xff\xd8"):
        return _jpeg_mode(data)
    if data[:3] == b"GIF":
        return "palette"
    return "RGB"


def check_file(path: Path, name: str, max_pixels: int) -> str:
    """Decode `path` as the edge and as the training pipeline do; return its colour mode or raise DataError."""
    import tensorflow as tf

    from edgeclf.train.tfdata import decode_rgb

    try:
        data = path.read_bytes()
    except OSError as e:
        raise DataError(f"{name}: cannot be read ({e.strerror})") from None
    edge = decode_bgr(data, name, max_pixels)[:, :, ::-1]  # header checks first: no full decode of a bomb
    try:
        ours = decode_rgb(tf.constant(data)).numpy()
    except (tf.errors.OpError, ValueError) as e:
        msg = str(getattr(e, "message", e)).splitlines()[0][:120]
        raise DataError(f"{name}: TensorFlow cannot decode it ({msg}); re-export it as PNG or JPEG") from None
    if ours.shape != edge.shape:
        raise DataError(f"{name}: decoders disagree on its size ({ours.shape[1]}x{ours.shape[0]} vs "
                        f"{edge.shape[1]}x{edge.shape[0]}; EXIF rotation?); re-export it upright without EXIF")
    diff = float(np.abs(ours.astype(np.int16) - edge.astype(np.int16)).mean())
    if diff > AGREE_MEAN_ABS:
        raise DataError(f"{name}: decoders disagree on its pixels (mean difference {diff:.1f}/255; EXIF "
                        "orientation or an unusual variant); re-export it as plain PNG or JPEG")
    return _mode(data)


def check_files(root: Path, files: Sequence[tuple[str, int]], max_pixels: int = DEFAULT_MAX_PIXELS,
                workers: int | None = None, on_done: Callable[[int], None] | None = None,
                ) -> tuple[list[tuple[str, int]], list[Bad], dict[str, int]]:
    """Check files in parallel; returns (usable, bad, counts of converted colour modes)."""
    workers = workers or min(8, (os.cpu_count() or 2) * 2)

    def one(item: tuple[str, int]) -> tuple[tuple[str, int], str | None, str | None]:
        try:
            return item, check_file(root / item[0], item[0], max_pixels), None
        except DataError as e:
            return item, None, str(e).split(": ", 1)[-1] if str(e).startswith(item[0]) else str(e)

    ok: list[tuple[str, int]] = []
    bad: list[Bad] = []
    converted: dict[str, int] = {}
    with ThreadPoolExecutor(workers) as pool:
        for n, (item, mode, err) in enumerate(pool.map(one, files), 1):
            if err is not None:
                bad.append(Bad(item[0], err))
            else:
                ok.append(item)
                if mode != "RGB":
                    converted[f"{mode} -> RGB"] = converted.get(f"{mode} -> RGB", 0) + 1
            if on_done:
                on_done(n)
    return ok, bad, converted


def load_dataset(root: Path, max_pixels: int = DEFAULT_MAX_PIXELS, strict: bool = False,
                 labels: Sequence[str] | None = None,
                 on_progress: Callable[[int, int], None] | None = None) -> Dataset:
    """Find classes under `root`, check every file, drop (or, strict, refuse) the broken ones.

    `labels` forces the class list (a validation folder must have the training folder's classes).
    """
    root = root.resolve()
    found, files, ignored = find_classes(root)
    if labels is not None and tuple(labels) != found:
        missing = sorted(set(labels) - set(found))
        extra = sorted(set(found) - set(labels))
        raise DataError(f"{root}: classes differ from the training folder's (missing {missing}, extra {extra}); "
                        "the validation folder needs the same class sub-folders")
    total = len(files)
    ok, bad, converted = check_files(root, files, max_pixels,
                                     on_done=(lambda n: on_progress(n, total)) if on_progress else None)
    if bad:
        listing = "; ".join(f"{b.file}: {b.reason}" for b in bad[:5]) + (f"; ... {len(bad) - 5} more" if len(bad) > 5 else "")
        if strict:
            raise DataError(f"{root}: {len(bad)} broken image(s) and --strict is on: {listing}; "
                            "remove or fix them, or drop --strict to skip them")
        log.warning("skipping %d broken image(s) (listed in data_report.json): %s", len(bad), listing)
    ds = Dataset(root, found, tuple(ok), tuple(bad), tuple(ignored), converted)
    empty = [name for name, c in ds.counts().items() if c == 0]
    if empty:
        raise DataError(f"{root}: class folder(s) {', '.join(repr(e) for e in empty)} have no usable images "
                        "(all broken, see above); fix the files")
    return ds
