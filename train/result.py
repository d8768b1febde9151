"""What `edgeclf train` returns: the run, its split, and per input size a typed `SizeResult` (issue #13 item 4:
readers get fields, not a mapping to guess at). `SizeResult.record` keeps everything measured, exactly as
`metrics.json` holds it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from edgeclf.contracts import Interval


@dataclass(frozen=True)
class SizeResult:
    """One input size: the kept model's validation figures, the test figure and the camera-like one (each with
    its interval over subjects; None without a test side), and how training went."""

    val_accuracy: float
    val_loss: float
    best_epoch: int | None
    epochs_run: int
    stopped: str  # "epochs", "early", ...
    params: int
    train_img_s: float | None
    train_seconds: float
    test: Interval | None = None
    camera_sim: Interval | None = None
    record: Mapping[str, Any] = field(default_factory=dict, repr=False)  # all of it, as in metrics.json

    @classmethod
    def from_record(cls, r: Mapping[str, Any]) -> "SizeResult":
        return cls(val_accuracy=float(r["val_accuracy"]), val_loss=float(r["val_loss"]), best_epoch=r.get("best_epoch"),
                   epochs_run=int(r["epochs_run"]), stopped=str(r["stopped"]), params=int(r["params"]),
                   train_img_s=r.get("train_img_s"), train_seconds=float(r.get("train_seconds") or 0.0),
                   test=Interval.from_dict(r["test"]["top1"], "test") if "test" in r else None,
                   camera_sim=Interval.from_dict(r["camera_sim"], "camera_sim") if "camera_sim" in r else None,
                   record=dict(r))


@dataclass(frozen=True)
class TrainResult:
    run_dir: Path
    arch: str
    labels: tuple[str, ...]
    split: str  # the sentence saying which split was used
    n_train: int
    n_val: int
    n_test: int
    sizes: dict[int, SizeResult]
    skipped: int  # broken files left out
    seconds: float
    worker: str | None = None  # multi-worker, not the chief: "worker 1 of 2" (its scratch copy of the run is gone)
