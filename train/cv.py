"""`edgeclf train --cv K`: group K-fold cross-validation, the tool for comparing recipes.

Each fold trains the configured recipe from scratch on K-1 folds (validation drawn from them, by group)
and measures the held-out fold once, as images and as camera-like frames. Every image is tested exactly
once; no subject is on two sides of any fold. The figures are the mean and standard deviation over folds,
per size, written to `cv.json` beside one folder per fold. No model is meant for deployment: train once
more without --cv for that.
"""

from __future__ import annotations

import logging
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgeclf.atomic import write_json
from edgeclf.progress import Progress
from edgeclf.rundir import RunDir
from edgeclf.train.config import TrainConfig

log = logging.getLogger(__name__)

CV_FILE = "cv.json"


@dataclass(frozen=True)
class CVResult:
    run_dir: Path
    arch: str
    k: int
    folds: tuple[dict[int, dict[str, float]], ...]  # per fold, per size: test and camera_sim accuracy
    summary: dict[int, dict[str, float]]  # per size: mean and sd of each
    seconds: float


def _mean_sd(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def cross_validate(cfg: TrainConfig, k: int, progress: Progress | None = None) -> CVResult:
    from edgeclf.train.distribute import resolve_strategy
    from edgeclf.train.run import _load_data, _prepare_out, _train_sizes, _write_data_files, resolve_weights, resolved
    from edgeclf.train.split import cv_folds

    t0 = time.perf_counter()
    if cfg.test_dir:
        from edgeclf.errors import UsageError

        raise UsageError("--cv makes its own test folds; drop --test-dir (or drop --cv to train once)")
    cfg = resolved(cfg)
    weights = resolve_weights(cfg)
    out = _prepare_out(cfg)
    cfg = cfg.with_(out=str(out))
    strategy = resolve_strategy(cfg.strategy)
    data = _load_data(cfg, progress)
    plans = cv_folds(data.ds.items, data.ds.labels, k, cfg.validation_split, cfg.seed, cfg.split, cfg.group_pattern)
    folds: list[dict[int, dict[str, float]]] = []
    for i, plan in enumerate(plans, 1):
        log.info("fold %d of %d: %d train, %d validation, %d test images", i, k, len(plan.split.train),
                 len(plan.split.val), len(plan.split.test))
        run = RunDir(out / f"fold-{i}")
        run.path.mkdir(parents=True, exist_ok=True)
        _write_data_files(run, data, plan.split, plan.why)
        results = _train_sizes(cfg, run, data.ds.labels, plan.split, progress, strategy, weights)
        folds.append({s: {"test": r["test"]["top1"]["accuracy"], "camera_sim": r["camera_sim"]["accuracy"],
                          "val": r["val_accuracy"], "best_epoch": r["best_epoch"]} for s, r in results.items()})
    summary: dict[int, dict[str, float]] = {}
    for size in cfg.sizes:
        row: dict[str, float] = {}
        for key in ("test", "camera_sim", "val"):
            m, sd = _mean_sd([f[size][key] for f in folds])
            row[f"{key}_mean"], row[f"{key}_sd"] = round(m, 4), round(sd, 4)
        summary[size] = row
    seconds = time.perf_counter() - t0
    doc: dict[str, Any] = {"k": k, "arch": cfg.arch, "config": cfg.to_dict(), "seconds": round(seconds, 1),
                           "folds": [{str(s): v for s, v in f.items()} for f in folds],
                           "summary": {str(s): v for s, v in summary.items()}}
    write_json(out / CV_FILE, doc)
    return CVResult(out, cfg.arch, k, tuple(folds), summary, seconds)
