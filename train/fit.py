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
from edgeclf.progress import Progress
from edgeclf.rundir import RunDir
from edgeclf.train.augment import AugmentSpec
from edgeclf.train import featcache, recipe
from edgeclf.train.archs import build_model, get_arch, transfer_weights
from edgeclf.train.backbones import BACKBONES
from edgeclf.train.callbacks import Best, EpochKeeper, SizeState, precise_bn, read_state
from edgeclf.train.config import TrainConfig
from edgeclf.train.distribute import fitting, input_plan
from edgeclf.train.epoch_progress import epoch_progress
from edgeclf.train.modelio import inference_view, load_keras
from edgeclf.train.precision import choose as choose_precision, float32_head, saved_as_float32, training_model
from edgeclf.train.recipe import Phase
from edgeclf.train.report import classification_metrics
from edgeclf.train.reseed import reseed_callback
from edgeclf.train.tfdata import cache_bytes, eval_dataset, train_dataset

log = logging.getLogger(__name__)

BN_IMAGES = 256  # training images whose statistics BatchNorm layers use for inference (precise BN)
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
    test: tuple[tuple[str, int], ...] = ()  # measured once, after training, by the model chosen on `val`
    test_groups: tuple[str, ...] = ()  # the subject of each test image, for the interval
    weights: str | None = None  # a pretrained --arch: what edgeclf.train.backbones.weights.resolve returned


def augment_spec(cfg: TrainConfig) -> AugmentSpec | None:
    if not cfg.augment:
        return None
    return {"camera": AugmentSpec(), "wide": AugmentSpec.wide(), "mild": AugmentSpec.mild()}[cfg.augment_policy]


def test_metrics(model: Any, job: SizeJob, spec: PreprocessSpec, cache: bool) -> dict[str, Any]:
    """The figure the run reports: the test side, measured once, with its interval over groups; and the same
    test subjects as camera-like frames through the edge preprocessing (`edgeclf.camsim`)."""
    if not job.test:
        return {}
    from edgeclf.camsim import CameraSim, frames
    from edgeclf.edge.preprocess import Preprocessor
    from edgeclf.metrics import bootstrap_interval, decide, evaluate

    n = len(job.labels)
    ys = [y for _, y in job.test]
    ev = evaluate(_predict(model, job.test, spec, n, False), ys, job.test_groups, job.labels, seed=job.cfg.seed)
    pre = Preprocessor(spec)
    xs = np.concatenate([pre(f.frame).copy() for f in frames(job.test, CameraSim(seed=job.cfg.seed))])
    cam_pred = decide(np.asarray(model.predict(xs, batch_size=EVAL_BATCH, verbose=0)), n)
    cam = bootstrap_interval(cam_pred == np.asarray(ys), job.test_groups, ys, seed=job.cfg.seed)
    return {"accuracy": ev.top1.accuracy, "loss": ev.log_loss, "test": ev.to_dict(), "camera_sim": cam.to_dict(),
            "per_class": ev.per_class, "confusion": [list(r) for r in ev.confusion]}


def state_dir(run: RunDir, size: int) -> Path:
    return run.path / "state" / str(size)


def epochs_for(job: SizeJob) -> int:
    return min(job.cfg.warm_epochs, job.cfg.epochs) if job.warm_from is not None else job.cfg.epochs


def views_for(job: SizeJob) -> int:
    """Augmented views whose trunk features this size caches (0: none, the whole net every step)."""
    return job.cfg.warm_feature_views if job.warm_from is not None else job.cfg.feature_views


def _compile(model: Any, cfg: TrainConfig, phase: Phase, n_classes: int, epoch_steps: int) -> None:
    import keras

    lr: Any = phase.lr
    if cfg.schedule == "cosine":
        lr = keras.optimizers.schedules.CosineDecay(phase.lr, decay_steps=phase.epochs * epoch_steps, alpha=0.0)
    from edgeclf.train.losses import loss_and_metric

    loss, metric = loss_and_metric(n_classes, cfg.label_smoothing)
    opt = keras.optimizers.RMSprop(lr, weight_decay=cfg.weight_decay or None)
    model.compile(optimizer=opt, loss=loss, metrics=[metric])


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


def _bn_batches(job: SizeJob, spec: PreprocessSpec, cache: bool) -> Any:
    """A fixed random sample of training images, unaugmented, for precise BN statistics."""
    rng = np.random.default_rng(job.cfg.seed)
    pick = sorted(rng.permutation(len(job.train))[:BN_IMAGES])
    items = [job.train[i] for i in pick]
    return eval_dataset([f for f, _ in items], [y for _, y in items], spec, 32, len(job.labels), cache)


def _measured_best(path: Path, job: SizeJob, spec: PreprocessSpec, state: SizeState) -> Best | None:
    """The best model file's own held-out metrics: a kill between writes can leave state and file apart.

    Measured with Keras' evaluate and the training loss, the numbers fit's validation reports, so a later
    epoch is compared like with like.
    """
    if not path.exists():
        return None
    from edgeclf.train.losses import loss_and_metric

    n = len(job.labels)
    model = load_keras(path)
    loss, metric = loss_and_metric(n, job.cfg.label_smoothing)
    model.compile(loss=loss, metrics=[metric])
    vds = eval_dataset([f for f, _ in job.val], [y for _, y in job.val], spec, EVAL_BATCH, n, False)
    loss, acc = model.evaluate(vds, verbose=0)
    return Best(float(acc), float(loss), state.best.epoch if state.best else 0)


def _build(job: SizeJob, state: SizeState, sdir: Path, fresh: bool = False) -> Any:
    """The backup's model (compiled, optimizer state included), or a fresh one (compiled per phase later;
    `fresh`: even when there is a backup, whose top `_split` then restores)."""
    import keras

    n = len(job.labels)
    # Before a resume too: tf.data's seeded shuffles also depend on the global seed (unset, TensorFlow uses its
    # default), so a resumed run would see other batches than the uninterrupted run it continues.
    keras.utils.set_random_seed(job.cfg.seed)
    if state.backup and not fresh:
        from edgeclf.train.losses import register

        register()  # the backup's compiled loss
        model = load_keras(sdir / state.backup, compile=True)
        log.info("%d px: resuming after epoch %d from %s", job.size, state.epoch, sdir / state.backup)
        return model
    cfg = job.cfg
    precision = choose_precision(cfg.precision, cfg.arch, job.size)
    log.info("%d px: computing in %s (%s); the saved model is float32", job.size, precision.policy, precision.why)
    with training_model(precision.policy):
        model = float32_head(build_model(cfg.arch, job.size, n, weights=None if job.warm_from else job.weights,
                                         frozen_bn=cfg.weights != "none"))
    if job.warm_from is not None:
        transfer_weights(load_keras(job.warm_from), model)
        log.info("%d px: starting from the weights of %s (same architecture, GAP head)", job.size, job.warm_from)
    elif get_arch(cfg.arch).pretrained:
        log.info("%d px: %s weights: %s", job.size, cfg.arch, cfg.weights)
    return model


def _split(job: SizeJob, model: Any, state: SizeState, sdir: Path) -> tuple[Any, Any]:
    """The model cut for the feature cache (None when it cannot be), and the backup whose top a resume restores."""
    sp = featcache.split(model, BACKBONES[job.cfg.arch].blocks, job.cfg.fine_tune_blocks)
    if sp is not None and not featcache.views_that_fit(1, len(job.train), sp.trunk.outputs[0].shape[1:]):
        log.info("%d px: one view of %d images' trunk features would pass the %d GB budget; the whole net runs "
                 "every step", job.size, len(job.train), featcache.FEATURE_BUDGET // 1024**3)
        return None, None
    if sp is None or not state.backup:
        return sp, None
    from edgeclf.train.losses import register

    register()  # the backup's compiled loss
    backup = load_keras(sdir / state.backup, compile=True)
    if tuple(backup.inputs[0].shape[1:]) != tuple(sp.top.inputs[0].shape[1:]):
        raise RunError(f"{sdir / state.backup}: a backup of the whole model, not of the top above the cached "
                       "features; resume with the options the run started with")
    sp.top.set_weights(backup.get_weights())
    log.info("%d px: resuming after epoch %d from %s", job.size, state.epoch, sdir / state.backup)
    return sp, backup


def _features(job: SizeJob, sp: Any, spec: PreprocessSpec, plan: Any, epochs: int, cache: bool,
              progress: Progress | None) -> tuple[Any, np.ndarray, np.ndarray, float]:
    """The trunk's features of the training images over K augmented views, and of the held-out images."""
    import time

    t0 = time.perf_counter()
    cfg, n = job.cfg, len(job.labels)
    wanted = min(views_for(job) if cfg.augment else 1, epochs)
    views = featcache.views_that_fit(wanted, len(job.train), sp.trunk.outputs[0].shape[1:])
    if views < wanted:
        log.info("%d px: %d views of %d images' features would pass the %d GB budget; caching %d", job.size,
                 wanted, len(job.train), featcache.FEATURE_BUDGET // 1024**3, views)
    batches = train_dataset([f for f, _ in job.train], [y for _, y in job.train], spec, plan.global_batch, n,
                            cfg.seed, 0, views, augment_spec(cfg), cache)
    feats = featcache.compute(sp, batches, len(job.train), views, progress, f"{job.size} px")
    vx, vy = featcache.held_out_features(sp, eval_dataset([f for f, _ in job.val], [y for _, y in job.val], spec,
                                                        EVAL_BATCH, n, cache))
    seconds = time.perf_counter() - t0
    log.info("%s", featcache.describe_cache(spec, sp, feats, seconds))
    return feats, vx, vy, seconds


def train_size(job: SizeJob, strategy: Any, progress: Progress | None = None) -> SizeState:
    """Fit one size to completion (or early stop), resuming from its backup if there is one."""
    cfg, size, n_classes = job.cfg, job.size, len(job.labels)
    epochs = epochs_for(job)
    sdir = state_dir(job.run, size)
    sdir.mkdir(parents=True, exist_ok=True)
    state = read_state(sdir / "state.json", size)
    if state.status == "done":
        return state
    for f in sdir.glob("backup-*.keras"):  # a kill between writing a backup and the state leaves one behind
        if f.name != state.backup:
            f.unlink()
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
    plan = input_plan(strategy, cfg.batch_size, len(job.train), len(job.val), EVAL_BATCH)  # global batch, sharding
    backbone = BACKBONES.get(cfg.arch)
    cacheable = bool(backbone and cfg.weights != "none" and views_for(job))
    want_split = cacheable and plan.replicas == 1
    if cacheable and plan.replicas > 1:
        log.info("%d px: --feature-views needs one device; %d replicas run the whole net every step", size,
                 plan.replicas)
    with strategy.scope():
        model = _build(job, state, sdir, fresh=want_split)
    sp, backup_top = _split(job, model, state, sdir) if want_split else (None, None)
    if want_split and sp is None and state.backup:  # the net cannot be cut: its backups are whole models
        with strategy.scope():
            model = _build(job, state, sdir)
    _check_space(job.run.path, model)
    # Several replicas write their backups at the same epochs, as before --backup-every (no clock decides).
    keeper = EpochKeeper(size=size, state=state, state_dir=sdir, best_path=best_path,
                    history_path=job.run.path / f"history-{size}.csv",
                    inference_model=saved_as_float32(inference_view(model)),
                    patience=cfg.patience, epochs=epochs, n_train=len(job.train), log_epochs=not progress,
                    select=cfg.select, backup_every=cfg.backup_every if plan.replicas == 1 else 0.0)
    done = state.epoch >= epochs or state.stopped == "early"
    feats = None
    if not done:
        log.info("%d px: %s, %d parameters, %d train / %d held-out images, epochs %d..%d",
                 size, get_arch(cfg.arch).summary, model.count_params(), len(job.train), len(job.val),
                 state.epoch + 1, epochs)
        if plan.replicas > 1:
            log.info("%d px: %s", size, plan.describe())
        feats = _features(job, sp, spec, plan, epochs, cache, progress) if sp else None
        fit_model = sp.top if sp else model
        for phase in recipe.phases(cfg, epochs, warm=job.warm_from is not None):
            st = keeper.state
            if st.epoch >= phase.end or st.stopped == "early" or st.status == "diverged":
                continue
            if st.epoch == phase.start or sp:  # a phase that starts now (a whole-model backup holds its compile)
                with strategy.scope():
                    recipe.apply(model, phase, backbone, cfg.fine_tune_blocks)
                    _compile(fit_model, cfg, phase, n_classes, plan.steps)
                if sp and backup_top is not None and st.epoch > phase.start:
                    featcache.restore_optimizer(fit_model, backup_top)
            if phase.kind != "all":
                log.info("%d px: epochs %d..%d: %s", size, st.epoch + 1, phase.end,
                         recipe.describe(phase, backbone, cfg.fine_tune_blocks))
            if feats:
                tds = featcache.train_batches(feats[0], cfg.seed, st.epoch, epochs, plan.global_batch)
                vds = featcache.eval_batches(feats[1], feats[2], EVAL_BATCH)
                bn = []
            else:
                tds = plan.train(train_dataset([f for f, _ in job.train], [y for _, y in job.train], spec,
                                               plan.global_batch, n_classes, cfg.seed, st.epoch, epochs,
                                               augment_spec(cfg), cache))
                vds = plan.eval(eval_dataset([f for f, _ in job.val], [y for _, y in job.val], spec, EVAL_BATCH,
                                             n_classes, cache))
                bn = [precise_bn(model, _bn_batches(job, spec, cache))]
            with fitting(strategy, fit_model):
                fit_model.fit(tds, validation_data=vds, epochs=phase.end, initial_epoch=st.epoch,
                              steps_per_epoch=plan.steps,
                              callbacks=[reseed_callback(cfg.seed), *bn, keeper.callback]
                              + ([epoch_progress(progress, f"{size} px", epochs, plan.steps)] if progress else []),
                              verbose=0, shuffle=False)
            keeper.flush(fit_model)  # each phase ends on a backup
    state = keeper.state
    if state.status == "diverged":
        kept = (f"the last good model stays at {best_path} (epoch {state.best.epoch}, val_accuracy "
                f"{state.best.accuracy:.4f})" if state.best and best_path.exists()
                else "no epoch ended with a finite loss, so no model was kept")
        raise TrainingDiverged(f"{size} px: training diverged ({state.diverged_at}) with --lr {cfg.lr:g}; "
                               f"training stopped; {kept}; lower --lr (the default is 0.001) and train again")
    if not best_path.exists():
        raise RunError(f"{size} px: no model was saved; train again")
    best = load_keras(best_path)  # the file as the converter will read it: safe mode, no Lambda
    result = classification_metrics(_predict(best, job.val, spec, n_classes, cache), [y for _, y in job.val],
                                     job.labels)
    result = {**result, "val_accuracy": result["accuracy"], "val_loss": result["loss"], "val": result,
              **test_metrics(best, job, spec, cache)}
    hist = state.history
    ips = [r["train_img_s"] for r in hist[1:]] or [r["train_img_s"] for r in hist]
    result.update(best_epoch=state.best.epoch if state.best else None, epochs_run=len(hist),
                  stopped=state.stopped or "epochs", params=int(best.count_params()),
                  last_val_accuracy=hist[-1].get("val_accuracy") if hist else None,
                  train_img_s=round(float(np.median(ips)), 1) if ips else None,
                  train_seconds=round(sum(r["seconds"] for r in hist) + (feats[3] if feats else 0.0), 1))
    if feats:  # the epochs' seconds leave out the trunk's passes: count them, and say what images/s that makes
        result.update(feature_views=feats[0].views, feature_cache_seconds=round(feats[3], 1),
                      train_img_s=round(len(job.train) * len(hist) / max(result["train_seconds"], 1e-9), 1))
    state = replace(state, status="done", result=result, stopped=state.stopped or "epochs")
    keeper.state = state
    keeper._save_state()
    if state.backup:
        (sdir / state.backup).unlink(missing_ok=True)
    return state
