"""`edgeclf eval MODEL_OR_BUNDLE DATA_DIR` as a library call."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np

from edgeclf.camsim import CameraSim, SimFrame, frames, write_video
from edgeclf.errors import DataError, UsageError
from edgeclf.groups import DEFAULT_GROUP_PATTERN, groups_for
from edgeclf.imageio import DEFAULT_MAX_PIXELS, IMAGE_EXTENSIONS, read_bgr
from edgeclf.metrics import Evaluation, evaluate, reliability
from edgeclf.preprocess import CROP_MODES
from edgeclf.progress import Progress

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EvalConfig:
    target: str  # a bundle folder, a run directory (then `size`) or a .keras file
    data_dir: str  # one sub-folder per class, named as the model's labels
    size: int | None = None  # which of a run's models; None: the smallest
    camera_sim: bool = False
    frames_per_image: int = 1
    seed: int = 0
    crop: str | None = None  # None: the model's preprocessing (center)
    runtime: str | None = None
    threads: int | None = None
    group_pattern: str = DEFAULT_GROUP_PATTERN
    video: str | None = None  # also write the camera-sim frames as a video (+ .labels.json)
    worst: int = 10
    max_pixels: int = DEFAULT_MAX_PIXELS

    def __post_init__(self) -> None:
        if self.crop is not None and self.crop not in CROP_MODES:
            raise UsageError(f"--crop {self.crop!r}: expected one of {', '.join(CROP_MODES)}")
        if self.frames_per_image < 1 or self.frames_per_image > 100:
            raise UsageError(f"--frames-per-image {self.frames_per_image}: expected 1 to 100")
        if self.video and not self.camera_sim:
            raise UsageError("--video writes camera-sim frames; add --camera-sim")
        if self.worst < 0:
            raise UsageError(f"--worst {self.worst}: expected 0 or more")


@dataclass(frozen=True)
class Mistake:
    file: str
    truth: str
    predicted: str
    score: float  # probability of the predicted (wrong) class


@dataclass(frozen=True)
class CalibrationReport:
    """A calibrated bundle on this data: the model's own scores against the calibrated ones, and how many
    images its "unknown" threshold turns away (correct answers among them are recall lost)."""

    temperature: float
    ece_before: float
    ece_after: float
    reliability_before: tuple[Mapping[str, float], ...]
    unknown_threshold: float | None = None
    unknown_fraction: float | None = None  # of all images
    correct_lost: float | None = None  # of the images answered correctly without the rule
    distance_threshold: float | None = None  # the feature-distance rule (calibration.feature_unknown), when present
    distance_fraction: float | None = None  # of all images, above it (`unknown_fraction` counts either rule)

    def to_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "reliability_before": [dict(r) for r in self.reliability_before]}


@dataclass(frozen=True)
class EvalReport:
    target: str
    kind: str  # "bundle" or "keras"
    data_dir: str
    mode: str  # "files" or "camera-sim"
    grouped: bool  # file names formed groups (else each file is its own)
    evaluation: Evaluation
    worst: tuple[Mistake, ...]
    predictions: tuple[tuple[str, int, int, float], ...] = field(repr=False, default=())  # file, truth, pred, score
    calibration: CalibrationReport | None = None  # a bundle with a calibration record (scores above are calibrated)

    def to_dict(self) -> dict[str, Any]:
        return {"target": self.target, "kind": self.kind, "data_dir": self.data_dir, "mode": self.mode,
                "grouped": self.grouped, **self.evaluation.to_dict(),
                "worst": [m.__dict__ for m in self.worst],
                **({"calibration": self.calibration.to_dict()} if self.calibration is not None else {})}


def folder_items(root: Path, labels: Sequence[str]) -> list[tuple[str, int]]:
    """(path, label index) of every image under root/<label>/; folder names must be the model's labels."""
    if not root.is_dir():
        raise DataError(f"{root}: no such folder; expected a folder with one sub-folder of images per class")
    subdirs = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    unknown = [d for d in subdirs if d not in labels]
    if unknown:
        raise DataError(f"{root}: class folder(s) {', '.join(map(repr, unknown))} are not labels of the model "
                        f"({', '.join(labels)}); rename or remove them")
    items = []
    for i, name in enumerate(labels):
        d = root / name
        if d.is_dir():
            items += [(str(p), i) for p in sorted(d.rglob("*"))
                      if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".")]
    if not items:
        raise DataError(f"{root}: no images ({', '.join(IMAGE_EXTENSIONS)}) in sub-folders named as the model's "
                        f"labels ({', '.join(labels)})")
    return items


Predict = Callable[[np.ndarray], np.ndarray]  # BGR frame -> probabilities, one per label


def _bundle_predictor(cfg: EvalConfig, raw: list[np.ndarray],
                      distances: list[float] | None = None) -> tuple[tuple[str, ...], Predict, Any]:
    """The edge path; `raw` collects the model's own (uncalibrated) probabilities of each frame, `distances`
    its feature distance (nan without that output)."""
    from edgeclf.edge.model import Classifier

    clf = Classifier.load(cfg.target, cfg.runtime, cfg.threads, cfg.crop)

    def predict(frame: np.ndarray) -> np.ndarray:
        p = clf(frame).copy()
        raw.append(clf.raw_probs.copy())
        if distances is not None:
            distances.append(clf.distance)
        return p

    return tuple(clf.labels), predict, clf.calibration


def _calibration_report(calibration: Any, raw: np.ndarray, probs: np.ndarray, truth: np.ndarray,
                        ece_after: float, distances: np.ndarray | None = None) -> CalibrationReport:
    pred = raw.argmax(axis=1)
    ece_before, bins = reliability(raw[np.arange(len(raw)), pred], pred == truth)
    rule, far_rule = calibration.unknown, calibration.feature_unknown
    if rule is None:
        return CalibrationReport(calibration.temperature, ece_before, ece_after, tuple(bins))
    unknown = probs.max(axis=1) < rule.threshold
    far = None
    if far_rule is not None and distances is not None:  # either rule, as the edge answers
        far = np.asarray(distances) > far_rule.threshold
        unknown = unknown | far
    correct = probs.argmax(axis=1) == truth
    lost = float(np.mean(unknown[correct])) if correct.any() else 0.0
    return CalibrationReport(calibration.temperature, ece_before, ece_after, tuple(bins), rule.threshold,
                             round(float(np.mean(unknown)), 4), round(lost, 4),
                             None if far is None else far_rule.threshold,
                             None if far is None else round(float(np.mean(far)), 4))


def _keras_predictor(cfg: EvalConfig) -> tuple[tuple[str, ...], Predict]:
    from dataclasses import replace

    from edgeclf.edge.preprocess import Preprocessor
    from edgeclf.rundir import RunDir
    from edgeclf.train.modelio import load_keras

    path = Path(cfg.target)
    if path.is_dir():
        info = RunDir(path).read_info()
        size = cfg.size or min(info.models)
        if size not in info.models:
            raise UsageError(f"--size {size}: the run {path} has models at {sorted(info.models)}")
        model_path, spec, labels = path / info.models[size].file, info.models[size].preprocess, info.labels
    else:
        info = RunDir(path.parent.parent).read_info()  # RUN/models/<size>.keras
        size = int(path.stem)
        model_path, spec, labels = path, info.models[size].preprocess, info.labels
    if cfg.crop:
        spec = replace(spec, crop=cfg.crop)
    model = load_keras(model_path)
    pre = Preprocessor(spec)

    def predict(frame: np.ndarray) -> np.ndarray:
        import warnings

        with warnings.catch_warnings():  # Keras names the input 'image' and warns about a positional tensor
            warnings.simplefilter("ignore")
            p = np.asarray(model(pre(frame), training=False), np.float64).reshape(-1)
        return np.array([1.0 - p[0], p[0]]) if len(labels) == 2 and p.size == 1 else p

    return tuple(labels), predict


def _inputs(cfg: EvalConfig, items: list[tuple[str, int]], labels: Sequence[str]) -> Iterator[SimFrame]:
    if cfg.camera_sim:
        sim = CameraSim(seed=cfg.seed)
        gen = frames(items, sim, cfg.frames_per_image, cfg.max_pixels)
        if cfg.video:
            got = list(gen)
            write_video(got, cfg.video, labels)
            log.info("wrote %d camera-sim frames to %s (+ .labels.json)", len(got), cfg.video)
            yield from got
        else:
            yield from gen
        return
    for k, (path, label) in enumerate(items):
        yield SimFrame(read_bgr(path, cfg.max_pixels), label, path, k)


def run_eval(cfg: EvalConfig, progress: Progress | None = None) -> EvalReport:
    target = Path(cfg.target)
    if not target.exists():
        raise UsageError(f"{target}: no such bundle, run directory or .keras file")
    is_bundle = target.is_dir() and (target / "manifest.json").exists() or target.name in ("manifest.json", "model.tflite")
    raw: list[np.ndarray] = []
    distances: list[float] = []
    labels, predict, calibration = (_bundle_predictor(cfg, raw, distances) if is_bundle
                                    else (*_keras_predictor(cfg), None))
    items = folder_items(Path(cfg.data_dir), labels)
    total = len(items) * (cfg.frames_per_image if cfg.camera_sim else 1)
    probs, truth, files = [], [], []
    for f in _inputs(cfg, items, labels):
        probs.append(predict(f.frame))
        truth.append(f.label)
        files.append(f.source)
        if progress:
            progress("evaluating", len(probs), total)
    groups, grouped = groups_for([(str(Path(p).relative_to(cfg.data_dir)) if Path(p).is_relative_to(cfg.data_dir)
                                   else p, y) for p, y in zip(files, truth)], cfg.group_pattern)
    p = np.asarray(probs, np.float64)
    ev = evaluate(p, truth, groups, labels, seed=cfg.seed)
    pred = p.argmax(axis=1)
    score = p[np.arange(len(p)), pred]
    wrong = [i for i in np.argsort(-score) if pred[i] != truth[i]][: cfg.worst]
    worst = tuple(Mistake(files[i], labels[truth[i]], labels[pred[i]], round(float(score[i]), 4)) for i in wrong)
    preds = tuple((files[i], int(truth[i]), int(pred[i]), round(float(score[i]), 6)) for i in range(len(p)))
    cal = None if calibration is None else _calibration_report(calibration, np.asarray(raw, np.float64), p,
                                                               np.asarray(truth), ev.ece, np.asarray(distances))
    return EvalReport(str(target), "bundle" if is_bundle else "keras", str(cfg.data_dir),
                      "camera-sim" if cfg.camera_sim else "files", grouped, ev, worst, preds, cal)
