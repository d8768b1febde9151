"""`edgeclf train` as a library call: check the data, split it, train each size, write the run directory.

    train(TrainConfig(data_dir=...))   a new run in runs/train-N (or cfg.out)
    resume(run_dir)                    continue a killed run from its backups, with its saved config

The run directory follows `edgeclf.rundir`; run.json is written last, so its presence means complete.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

from edgeclf.atomic import write_json, write_text
from edgeclf.dirlock import exclusive
from edgeclf.errors import DataError, EdgeclfError, RunError, UsageError
from edgeclf.preprocess import PreprocessSpec
from edgeclf.progress import Progress
from edgeclf.rundir import CONFIG_FILE, RUN_FILE, SOURCES_FILE, RunDir, RunInfo, RunModel, Split
from edgeclf.train.archs import get_arch
from edgeclf.train.config import TrainConfig
from edgeclf.train.data import load_dataset
from edgeclf.train.result import SizeResult, TrainResult

log = logging.getLogger(__name__)

REPORT_FILE = "data_report.json"


def next_run_dir(base: Path) -> Path:
    """runs/train-N with N one more than the highest there."""
    base.mkdir(parents=True, exist_ok=True)
    taken = [int(p.name[6:]) for p in base.glob("train-*") if p.name[6:].isdigit()]
    return base / f"train-{max(taken, default=0) + 1}"


def _prepare_out(cfg: TrainConfig) -> Path:
    """Create the run folder and prove it writable before any work; refuse to overwrite a run."""
    try:
        out = Path(cfg.out).resolve() if cfg.out else next_run_dir(Path("runs").resolve())
        if out.exists() and (not out.is_dir() or any(out.iterdir())):
            raise UsageError(f"--out {out}: already exists and is not empty; choose a new folder, or "
                             f"`edgeclf train --resume {out}` to continue that run")
        out.mkdir(parents=True, exist_ok=True)
        write_json(out / CONFIG_FILE, {**cfg.to_dict(), "out": str(out)})
    except OSError as e:
        raise RunError(f"--out {cfg.out or 'runs/'}: cannot write there ({e.strerror or e}); "
                       "choose a writable folder with --out") from None
    return out


def _checking(progress: Progress | None, what: str) -> Callable[[int, int], None] | None:
    """load_dataset's per-file callback, reported as `what` through `progress`."""
    if progress is None:
        return None
    return lambda done, total: progress(what, done, total)


@dataclass(frozen=True)
class Data:
    """The checked images of DATA_DIR and of the --validation-dir / --test-dir folders, when given."""

    ds: Any
    vds: Any = None
    tds: Any = None
    added: tuple[Any, ...] = ()  # --add folders (edgeclf.train.add.Added): training side only

    @property
    def bad(self) -> int:
        return sum(len(d.bad) for d in (self.ds, self.vds, self.tds, *self.added) if d is not None)


def _load_data(cfg: TrainConfig, progress: Progress | None) -> Data:
    ds = load_dataset(Path(cfg.data_dir), cfg.max_pixels, cfg.strict,
                      on_progress=_checking(progress, "checking images"))
    vds = tds = None
    if cfg.validation_dir:
        vds = load_dataset(Path(cfg.validation_dir), cfg.max_pixels, cfg.strict, labels=ds.labels,
                           on_progress=_checking(progress, "checking --validation-dir images"))
    if cfg.test_dir:
        tds = load_dataset(Path(cfg.test_dir), cfg.max_pixels, cfg.strict, labels=ds.labels,
                           on_progress=_checking(progress, "checking --test-dir images"))
    from edgeclf.train.add import check_add_dirs, load_added

    check_add_dirs(cfg.add, cfg.data_dir, (cfg.validation_dir, cfg.test_dir, cfg.out))
    return Data(ds, vds, tds, load_added(cfg.add, ds.labels, cfg.max_pixels, cfg.strict))


def _split(cfg: TrainConfig, data: Data) -> tuple[Split, str]:
    from edgeclf.train.add import with_added

    split, why = _split_data(cfg, data)
    return with_added(split, data.added), why


def _split_data(cfg: TrainConfig, data: Data) -> tuple[Split, str]:
    from edgeclf.train.split import make_split, with_given

    ds, vds, tds = data.ds, data.vds, data.tds
    plan = None
    if vds is None or tds is None:
        plan = make_split(ds.items, ds.labels, cfg.validation_split, cfg.seed, cfg.split, cfg.group_pattern,
                          test_fraction=0.0 if tds is not None else cfg.test_split, fixed_val=vds is not None)
    if vds is None and tds is None:
        assert plan is not None
        return plan.split, plan.why
    given = with_given(plan, ds.items, vds.items if vds is not None else None, str(vds.root) if vds is not None else None,
                       tds.items if tds is not None else None, str(tds.root) if tds is not None else None)
    return given.split, given.why


def test_groups(cfg: TrainConfig, split: Split) -> tuple[str, ...]:
    """The subject of each test image: groups from the file names when they form groups, else the file."""
    from edgeclf.groups import compile_pattern, group_of, groups_for

    if split.strategy == "group" and not split.test_dir:  # the split's own subjects
        rx = compile_pattern(cfg.group_pattern)
        return tuple(group_of(p, rx) for p, _ in split.test)
    return tuple(groups_for(split.test, cfg.group_pattern)[0])


def _size_order(cfg: TrainConfig) -> list[int]:
    """Smallest first when weights carry over between sizes (the larger size then starts from them)."""
    if get_arch(cfg.arch).size_agnostic and cfg.warm_start:
        return sorted(cfg.sizes)
    return list(cfg.sizes)


def resolve_weights(cfg: TrainConfig) -> str | None:
    """A pretrained --arch's --weights as a file (downloaded or checked) or loader; None for random weights.
    Called before the run directory exists: a missing download or a wrong file leaves nothing behind."""
    if not get_arch(cfg.arch).pretrained:
        return None
    from edgeclf.train.backbones.weights import resolve

    return resolve(cfg.arch, cfg.weights or "none")


def _train_sizes(cfg: TrainConfig, run: RunDir, labels: tuple[str, ...], split: Split,
                 progress: Progress | None, strategy: Any, weights: str | None) -> dict[int, dict[str, Any]]:
    import tensorflow as tf

    from edgeclf.train.fit import SizeJob, train_size

    if cfg.deterministic:
        tf.config.experimental.enable_op_determinism()
    paths = split.paths(cfg.data_dir)
    groups = test_groups(cfg, split)
    results: dict[int, dict[str, Any]] = {}
    warm: Path | None = None
    for size in _size_order(cfg):
        job = SizeJob(size, cfg, labels, paths.train, paths.val, run, warm, paths.test, groups, weights)
        state = train_size(job, strategy, progress)
        results[size] = state.result
        log.info("%d px: %s (best epoch %s of %d, %s)", size, headline(state.result),
                 state.result["best_epoch"], state.result["epochs_run"], state.result["stopped"])
        if get_arch(cfg.arch).size_agnostic and cfg.warm_start:
            warm = run.model_path(size)
    return results


def _finish(cfg: TrainConfig, run: RunDir, labels: tuple[str, ...], split: Split, why: str,
            results: dict[int, dict[str, Any]]) -> None:
    from edgeclf.train.callbacks import read_state
    from edgeclf.train.fit import state_dir
    from edgeclf.train.report import plot_confusion, plot_curves

    sizes = list(cfg.sizes)
    metrics = {"arch": cfg.arch, "labels": list(labels),
               "split": {"strategy": split.strategy, "why": why, "train": len(split.train), "val": len(split.val),
                         "test": len(split.test)},
               "sizes": {str(s): results[s] for s in sizes}}
    write_json(run.path / "metrics.json", metrics)
    histories = {s: list(read_state(state_dir(run, s) / "state.json", s).history) for s in sizes}
    plot_curves(histories, run.path / "curves.png", f"{cfg.arch} on {Path(cfg.data_dir).name} ({split.strategy} split)")
    plot_confusion({s: results[s] for s in sizes}, labels, run.path / "confusion.png")
    task = "binary" if len(labels) == 2 else "multiclass"
    models = {s: RunModel(s, run.model_path(s).relative_to(run.path).as_posix(), PreprocessSpec(s, s)) for s in sizes}
    extra = {"split": split.strategy, "seed": cfg.seed, "weights": cfg.weights,
             "val_accuracy": {str(s): results[s]["val_accuracy"] for s in sizes},
             "test": {str(s): results[s]["test"]["top1"] for s in sizes if "test" in results[s]},
             "camera_sim": {str(s): results[s]["camera_sim"] for s in sizes if "camera_sim" in results[s]}}
    run.write_info(RunInfo(labels, task, cfg.arch, cfg.data_dir, models, extra))


def _result(cfg: TrainConfig, run: RunDir, labels: tuple[str, ...], split: Split, why: str,
            results: dict[int, dict[str, Any]], skipped: int, t0: float) -> TrainResult:
    return TrainResult(run.path, cfg.arch, labels, why, len(split.train), len(split.val), len(split.test),
                       {s: SizeResult.from_record(results[s]) for s in cfg.sizes}, skipped, time.perf_counter() - t0)


def headline(result: dict[str, Any]) -> str:
    """The test figure with its interval and what it rests on; the validation figure when there is no test."""
    from edgeclf.metrics import Interval

    if "test" not in result:
        return f"validation accuracy {result['val_accuracy']:.4f} (no test side: it picked the epoch, so optimistic)"
    top1 = Interval.from_dict(result["test"]["top1"])
    cam = Interval.from_dict(result["camera_sim"]) if "camera_sim" in result else None
    return f"test accuracy {top1.text()}" + (f"; camera-sim {cam.accuracy:.3f} [{cam.low:.2f}, {cam.high:.2f}]" if cam else "")


def _write_data_files(run: RunDir, data: Data, split: Split, why: str) -> None:
    ds, vds, tds = data.ds, data.vds, data.tds
    report = {**ds.report(), "split": why}
    if vds is not None:
        report["validation"] = vds.report()
    if tds is not None:
        report["test"] = tds.report()
    if data.added:
        report["added"] = [a.report(ds.labels) for a in data.added]
    write_json(run.path / REPORT_FILE, report)
    write_text(run.path / "labels.txt", "\n".join(ds.labels) + "\n")
    run.write_split(split)
    from edgeclf.train.add import sources

    write_json(run.path / SOURCES_FILE, sources(str(ds.root), split, data.added, ds.labels))


def train(cfg: TrainConfig, progress: Progress | None = None) -> TrainResult:
    """Train a new run; see the module docstring. Under --strategy multi-worker only the chief writes the
    run directory; every other worker writes a scratch copy that is removed at the end."""
    from edgeclf.train.distribute import worker_role

    role = worker_role(cfg.strategy)  # TF_CONFIG is checked before any work
    with role.scratch() as scratch:
        result = _train(cfg, progress, scratch)
    return result if role.chief else replace(result, worker=role.describe())


def resolved(cfg: TrainConfig) -> TrainConfig:
    """The config with absolute data folders and weights file (the run directory records where they are)."""
    return cfg.with_(data_dir=str(Path(cfg.data_dir).resolve()),
                     validation_dir=str(Path(cfg.validation_dir).resolve()) if cfg.validation_dir else None,
                     add=tuple(str(Path(d).resolve()) for d in cfg.add),
                     test_dir=str(Path(cfg.test_dir).resolve()) if cfg.test_dir else None,
                     weights=cfg.weights if cfg.weights in (None, "imagenet", "none")
                     else str(Path(cfg.weights).expanduser().resolve()))


def _train(cfg: TrainConfig, progress: Progress | None, scratch: Path | None) -> TrainResult:
    t0 = time.perf_counter()
    cfg = resolved(cfg)
    weights = resolve_weights(cfg)
    out = _prepare_out(cfg if scratch is None else cfg.with_(out=str(scratch / "run")))
    cfg = cfg.with_(out=str(out))
    with exclusive(out, "`edgeclf train` is writing this run"):
        return _train_locked(cfg, progress, out, t0, weights)


def _train_locked(cfg: TrainConfig, progress: Progress | None, out: Path, t0: float, weights: str | None) -> TrainResult:
    from edgeclf.train.distribute import resolve_strategy
    from edgeclf.train.threads import configure_threads

    run = RunDir(out)
    log.info(configure_threads())  # before TensorFlow starts its pools
    strategy = resolve_strategy(cfg.strategy)  # before TensorFlow runs anything: multi-worker sets it up first
    try:
        data = _load_data(cfg, progress)
        split, why = _split(cfg, data)
    except EdgeclfError:
        # Nothing was trained: leave no run directory behind to block --out or make --resume repeat the error.
        shutil.rmtree(out, ignore_errors=True)
        raise
    ds = data.ds
    log.info("%s: %d classes %s, %d images (%d train, %d validation, %d test); %s", cfg.data_dir, len(ds.labels),
             list(ds.labels), len(ds.items), len(split.train), len(split.val), len(split.test), why)
    _write_data_files(run, data, split, why)
    results = _train_sizes(cfg, run, ds.labels, split, progress, strategy, weights)
    _finish(cfg, run, ds.labels, split, why, results)
    return _result(cfg, run, ds.labels, split, why, results, data.bad, t0)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        raise RunError(f"{path.parent}: no {path.name}; this is not a run `edgeclf train` started") from None
    except ValueError as e:
        raise RunError(f"{path}: damaged ({e}); start a new run") from None


def resume(run_dir: Path, progress: Progress | None = None) -> TrainResult:
    """Continue a killed run with its saved config and split; finished sizes are not trained again.

    Under --strategy multi-worker every worker passes the chief's run directory (shared storage): the
    chief resumes it in place, the others resume a scratch copy of it, so all restore the same backup.
    """
    from edgeclf.train.distribute import worker_role

    run_dir = Path(run_dir).resolve()
    if not run_dir.is_dir():
        raise RunError(f"--resume {run_dir}: no such run directory")
    role = worker_role(str(_read_json(run_dir / CONFIG_FILE).get("strategy", "auto")))
    with role.scratch() as scratch:
        if scratch is not None:  # copied before this worker joins the cluster, so before the chief writes
            shutil.copytree(run_dir, scratch / "run", ignore=shutil.ignore_patterns(".*.tmp*"))
        result = _resume(run_dir if scratch is None else scratch / "run", progress)
    return result if role.chief else replace(result, worker=role.describe(), run_dir=run_dir)


def _resume(run_dir: Path, progress: Progress | None) -> TrainResult:
    with exclusive(run_dir, "`edgeclf train` is writing this run (two --resume of one run would mix their "
                            "histories)"):
        return _resume_locked(run_dir, progress)


def _resume_locked(run_dir: Path, progress: Progress | None) -> TrainResult:
    from edgeclf.train.distribute import resolve_strategy
    from edgeclf.train.threads import configure_threads

    t0 = time.perf_counter()
    cfg = TrainConfig.from_dict(_read_json(run_dir / CONFIG_FILE)).with_(out=str(run_dir))
    run = RunDir(run_dir)
    log.info(configure_threads())  # before TensorFlow starts its pools
    strategy = resolve_strategy(cfg.strategy)  # before TensorFlow runs anything (and before the chief writes)
    for tmp in run_dir.rglob(".*.tmp*"):  # half-written files of the killed process (atomic writes' temps)
        if tmp.is_file():
            tmp.unlink()
    if not (run_dir / "split.json").exists():
        log.info("%s: stopped before the split was saved; checking the data again", run_dir)
        for f in (REPORT_FILE, "labels.txt"):
            (run_dir / f).unlink(missing_ok=True)
        data = _load_data(cfg, progress)
        split, why = _split(cfg, data)
        _write_data_files(run, data, split, why)
    split = run.read_split()
    report = _read_json(run_dir / REPORT_FILE)
    why, labels = report.get("split", split.strategy), tuple(report["labels"])
    missing = split.paths(cfg.data_dir).missing()
    if missing:
        raise DataError(f"{missing[0]}: listed in {run_dir / 'split.json'} but gone; restore the data or train anew")
    if (run_dir / RUN_FILE).exists():
        log.info("%s is complete; nothing to resume", run_dir)
    else:
        log.info("resuming %s (%s, sizes %s)", run_dir, cfg.arch, list(cfg.sizes))
    results = _train_sizes(cfg, run, labels, split, progress, strategy, resolve_weights(cfg))
    if not (run_dir / RUN_FILE).exists():
        _finish(cfg, run, labels, split, why, results)
    skipped = sum(len(r.get("bad", [])) for r in (report, report.get("validation", {}), report.get("test", {})))
    return _result(cfg, run, labels, split, why, results, skipped, t0)
