"""`edgeclf classify`: the camera's pipeline (same preprocessing, interpreter and postprocessing) on files."""

from __future__ import annotations

import glob
from pathlib import Path
from typing import Iterator, NamedTuple, Sequence

from edgeclf.edge.model import Classifier
from edgeclf.edge.postprocess import UNKNOWN, SmoothConfig, answer, top_k, unknown_by
from edgeclf.edge.sources import image_files
from edgeclf.errors import DataError, EdgeclfError
from edgeclf.imageio import DEFAULT_MAX_PIXELS, IMAGE_EXTENSIONS, read_bgr


class FileResult(NamedTuple):
    path: Path
    label: str = ""
    score: float = 0.0
    top: tuple[tuple[str, float], ...] = ()
    probs: tuple[float, ...] = ()
    error: str = ""  # set when the file could not be classified
    unknown_by: str | None = None  # "margin", "feature-distance" or both, when the label is unknown
    distance: float | None = None  # the model's feature distance, when it has that output

    def to_dict(self) -> dict[str, object]:
        if self.error:
            return {"file": str(self.path), "error": self.error}
        d: dict[str, object] = {"file": str(self.path), "label": self.label, "score": round(self.score, 6),
                                "top": [[lab, round(p, 6)] for lab, p in self.top],
                                "probabilities": [round(p, 6) for p in self.probs]}
        if self.unknown_by is not None:
            d["unknown_by"] = self.unknown_by
        if self.distance is not None:
            d["feature_distance"] = round(self.distance, 4)
        return d


def expand_paths(paths: Sequence[Path]) -> Iterator[Path]:
    """Files as given, folders as their images in name order, globs expanded; a missing path is an error."""
    for p in paths:
        if p.is_dir():
            files = image_files(p)
            if not files:  # a test set: one sub-folder of images per class
                subs = sorted(d for d in p.iterdir() if d.is_dir() and not d.name.startswith("."))
                files = [f for d in subs for f in image_files(d)]
            if not files:
                raise DataError(f"{p}: no images ({', '.join(IMAGE_EXTENSIONS)}) in this folder or its class "
                                "sub-folders")
            yield from files
        elif p.is_file():
            yield p
        elif any(ch in str(p) for ch in "*?["):
            hits = sorted(Path(f) for f in glob.glob(str(p)) if Path(f).is_file())
            if not hits:
                raise DataError(f"{p}: the pattern matches no files")
            yield from hits
        else:
            raise DataError(f"{p}: no such file or folder; expected image files or folders of images")


def classify_paths(clf: Classifier, paths: Sequence[Path], top: int = 3, decision: SmoothConfig | float = 0.0,
                   max_pixels: int = DEFAULT_MAX_PIXELS) -> Iterator[FileResult]:
    """One result per image; unreadable images give a result with `error` set (the rest go on).

    `decision`: thresholds and --unknown (a float: one threshold, and the bundle's unknown rule if any)."""
    labels = clf.labels
    if not isinstance(decision, SmoothConfig):
        decision = SmoothConfig(threshold=decision)
    thresholds = decision.thresholds(labels)  # a label the bundle does not have is refused here
    unknown = decision.unknown_threshold(clf.calibration)
    distance_above = decision.distance_threshold(clf.calibration)
    files = list(expand_paths(paths))  # every argument checked before the first answer
    for path in files:
        try:
            image = read_bgr(path, max_pixels)
        except EdgeclfError as e:
            yield FileResult(path, error=str(e))
            continue
        probs = clf(image)
        label, score = answer(probs, labels, thresholds, unknown, clf.distance, distance_above)
        by = unknown_by(score, unknown, clf.distance, distance_above) if label == UNKNOWN else None
        has_distance = clf.distance == clf.distance  # not nan
        yield FileResult(path, label, score, tuple(top_k(probs, labels, top)), tuple(float(p) for p in probs),
                         unknown_by=by, distance=clf.distance if has_distance else None)
