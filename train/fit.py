"""Train one input size: build (or restore from backup) the model, fit it, keep the best, evaluate it."""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from edgeclf.errors import EdgeclfError, RunError
from edgeclf.preprocess import PreprocessSpec
from edgeclf.rundir import RunDir
from edgeclf.train.augment import AugmentSpec
from edgeclf.train.archs import build_model, get_arch, transfer_weights
from edgeclf.train.callbacks import Best, Keeper, SizeState, read_state
from edgeclf.train.config import TrainConfig
from edgeclf.train.modelio import inference_view, load_keras
from edgeclf.train.report import classification_metrics
from edgeclf.train.tfdata import cache_bytes, eval_dataset, steps_per_epoch, train_dataset

log = logging.getLogger(__name__)

CACHE_BUDGET = 3 * 1024**3  # bytes of preprocessed images kept in memory; above it, decode every epoch
EVAL_BATCH = 64


class TrainingDiverged(EdgeclfError):
    """The loss stopped being a finite number."""


@dataclass(frozen=True)
class SizeJob:
    size: int
    cfg: TrainConfig
    labels: tuple[str, ...]
    train: tuple[tuple[str, int], ...]  # absolute paths
    val: tuple[tuple[str, int], ...]
    run: RunDir
    warm_from: Path | None = None  # a smaller size's best model with the same (size-agnostic) weights


def state_dir(run: RunDir, size: int) -> Path:
    return run.path / "state" / str(size)


def _compile(model: Any, cfg: TrainConfig, n_classes: int) -> None:
    import keras

    loss = "binary_crossentropy" if n_classes == 2 else "sparse_categorical_crossentropy"
    model.compile(optimizer=keras.optimizers.RMSprop(cfg.lr), loss=loss, metrics=["accuracy"])


def _check_space(path: Path, model: Any) -> None:
    """Best model + backup with optimizer state: about 3x the weights, plus slack."""
    need = 3 * 4 * model.count_params() + 16 * 1024**2
    free = shutil.disk_usage(path).free
    if free < need:
        raise RunError(f"{path}: {free / 1e6:.0f} MB free, training needs about {need / 1e6:.0f} MB for the "
                       "model and its backups; free space or choose another --out")


def _predict(model: Any, files: Sequence[tuple[str, int]], spec: PreprocessSpec, n_classes: int, cache: bool) -> np.ndarray:
    ds = eval_dataset([f for f, _ in files], [y for _, y in files], spec, EVAL_BATCH, n_classes, cache)
    return np.asarray(model.predict(ds.map(lambda x, y: x), verbose=0))


def _measured_best(path: Path, job: SizeJob, spec: PreprocessSpec, state: SizeState) -> Best | None:
    """The best model file's own held-out metrics: a kill between writes can leave state and file apart."""
    if not path.exists():
        return None
    m = classification_metrics(_predict(load_keras(path), job.val, spec, len(job.labels), False),
                               [y for _, y in job.val], job.labels)
    epoch = state.best.epoch if state.best else 0
    return Best(float(m["accuracy"]), float(m["loss"]), epoch)


def _build(job: SizeJob, state: SizeState, sdir: Path) -> Any:
    import keras

    n = len(job.labels)
    if state.backup:
        model = load_keras(sdir / state.backup, compile=True)
        log.info("%d px: resuming after epoch %d from %s", job.size, state.epoch, sdir / state.backup)
        return model
    keras.utils.set_random_seed(job.cfg.seed)
    model = build_model(job.cfg.arch, job.size, n)
    if job.warm_from is not None:
        transfer_weights(load_keras(job.warm_from), model)
        log.info("%d px: starting from the weights of %s (same architecture, GAP head)", job.size, job.warm_from)
    _compile(model, job.cfg, n)
    return model


def train_size(job: SizeJob, strategy: Any, progress: bool = False) -> SizeState:
    """Fit one size to completion (or early stop), resuming from its backup if there is one."""
    cfg, size, n_classes = job.cfg, job.size, len(job.labels)
    sdir = state_dir(job.run, size)
    sdir.mkdir(parents=True, exist_ok=True)
    state = read_state(sdir / "state.json", size)
    if state.status == "done":
        return state
    if state.status == "diverged":
        log.info("%d px: the last attempt diverged (%s); retrying from the last good backup", size, state.diverged_at)
        state = replace(state, status="running", stopped=None, diverged_at=None)
    spec = PreprocessSpec(size, size)
    best_path = job.run.model_path(size)
    if state.epoch > 0 or best_path.exists():
        state = replace(state, best=_measured_best(best_path, job, spec, state))
    cache = cache_bytes(len(job.train) + len(job.val), spec) <= CACHE_BUDGET
    if not cache:
        log.info("%d px: %d images do not fit the %d GB cache budget; decoding every epoch",
                 size, len(job.train) + len(job.val), CACHE_BUDGET // 1024**3)
    with strategy.scope():
        model = _build(job, state, sdir)
    _check_space(job.run.path, model)
    keeper = Keeper(size=size, state=state, state_dir=sdir, best_path=best_path,
                    history_path=job.run.path / f"history-{size}.csv", inference_model=inference_view(model),
                    patience=cfg.patience, epochs=cfg.epochs, n_train=len(job.train), log_epochs=not progress)
    done = state.epoch >= cfg.epochs or state.stopped == "early"
    if not done:
        log.info("%d px: %s, %d parameters, %d train / %d held-out images, epochs %d..%d",
                 size, get_arch(cfg.arch).summary, model.count_params(), len(job.train), len(job.val),
                 state.epoch + 1, cfg.epochs)
        tds = train_dataset([f for f, _ in job.train], [y for _, y in job.train], spec, cfg.batch_size, n_classes,
                            cfg.seed, state.epoch, cfg.epochs, AugmentSpec() if cfg.augment else None, cache)
        vds = eval_dataset([f for f, _ in job.val], [y for _, y in job.val], spec, EVAL_BATCH, n_classes, cache)
        model.fit(tds, validation_data=vds, epochs=cfg.epochs, initial_epoch=state.epoch,
                  steps_per_epoch=steps_per_epoch(len(job.train), cfg.batch_size),
                  callbacks=[keeper.callback], verbose=1 if progress else 0, shuffle=False)
    state = keeper.state
    if state.status == "diverged":
        kept = (f"the last good model stays at {best_path} (epoch {state.best.epoch}, val_accuracy "
                f"{state.best.accuracy:.4f})" if state.best and best_path.exists()
                else "no epoch ended with a finite loss, so no model was kept")
        raise TrainingDiverged(f"{size} px: the loss became NaN/inf at {state.diverged_at} with --lr {cfg.lr:g}; "
                               f"training stopped; {kept}; lower --lr (the default is 0.001) and train again")
    if not best_path.exists():
        raise RunError(f"{size} px: no model was saved; train again")
    best = load_keras(best_path)  # the file as the converter will read it: safe mode, no Lambda
    result = classification_metrics(_predict(best, job.val, spec, n_classes, cache), [y for _, y in job.val],
                                     job.labels)
    hist = state.history
    ips = [r["train_img_s"] for r in hist[1:]] or [r["train_img_s"] for r in hist]
    result.update(best_epoch=state.best.epoch if state.best else None, epochs_run=len(hist),
                  stopped=state.stopped or "epochs", params=int(best.count_params()),
                  train_img_s=round(float(np.median(ips)), 1) if ips else None,
                  train_seconds=round(sum(r["seconds"] for r in hist), 1))
    state = replace(state, status="done", result=result, stopped=state.stopped or "epochs")
    keeper.state = state
    keeper._save_state()
    if state.backup:
        (sdir / state.backup).unlink(missing_ok=True)
    return state
