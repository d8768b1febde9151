from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from ..errors import UsageError
from ._app import command, settings
from .progress import progress_bar

# Options left at None take TrainConfig's defaults; with --resume they must stay unset.
_TUNABLE = ("add", "validation_dir", "validation_split", "test_dir", "test_split", "augment_policy", "label_smoothing",
            "weight_decay", "select", "split", "group_pattern", "strict", "augment", "arch", "size",
            "lr", "schedule", "epochs", "batch_size", "seed", "out", "patience", "max_pixels", "strategy",
            "warm_start", "warm_epochs", "weights", "head_epochs", "fine_tune_blocks", "fine_tune_lr", "precision",
            "feature_views", "warm_feature_views", "backup_every")


@command("train")
def train(
    data_dir: Optional[Path] = typer.Argument(None, help="Folder with one sub-folder of images per class."),
    validation_dir: Optional[Path] = typer.Option(None, "--validation-dir",
                                                  help="Held-out images in the same class sub-folders (no split)."),
    validation_split: Optional[float] = typer.Option(None, "--validation-split", help="Fraction of each class "
                                                     "for validation (early stopping, best epoch). [default: 0.15]"),
    test_dir: Optional[Path] = typer.Option(None, "--test-dir", help="Test images in the same class sub-folders, "
                                            "measured once at the end (instead of --test-split)."),
    test_split: Optional[float] = typer.Option(None, "--test-split", help="Fraction of each class kept for the "
                                               "test figure, by subject; 0: none. [default: 0.2]"),
    split: Optional[str] = typer.Option(None, "--split", help="auto (group split when file names show groups), "
                                        "group, or stratified. [default: auto]"),
    group_pattern: Optional[str] = typer.Option(None, "--group-pattern", help="Regex on the file stem whose first "
                                                "group names the subject. [default: stem before the last - or _]"),
    strict: Optional[bool] = typer.Option(None, "--strict/--no-strict", help="Broken images are fatal, not skipped."),
    augment: Optional[bool] = typer.Option(None, "--augment/--no-augment",
                                           help="Random changes to training images. [default: on]"),
    augment_policy: Optional[str] = typer.Option(None, "--augment-policy", help="camera (the subject smaller or "
                                                 "larger and anywhere on a background, light, noise, blur) or mild "
                                                 "(flip, small zoom/shift/rotation). [default: camera]"),
    label_smoothing: Optional[float] = typer.Option(None, "--label-smoothing",
                                                    help="Soften the targets (less over-confident). [default: 0.1]"),
    weight_decay: Optional[float] = typer.Option(None, "--weight-decay", help="Decoupled weight decay. [default: 0]"),
    select: Optional[str] = typer.Option(None, "--select", help="The validation figure that picks the kept epoch "
                                         "and stops early: accuracy, loss, or last (the schedule's final weights, no early stop). "
                                         "[default: last]"),
    arch: Optional[str] = typer.Option(None, "--arch", help="From scratch: seed, course, edge, edge-s or edge-sep; "
                                       "pretrained (docs/backbones.md): mobilenetv3-small, mobilenetv3-large, "
                                       "mobilenetv2, efficientnet-lite0. [default: efficientnet-lite0, ImageNet weights]"),
    weights: Optional[str] = typer.Option(None, "--weights", help="Pretrained --arch: imagenet (downloaded once, or "
                                          "from the package for efficientnet-lite0), none (random), or a weights "
                                          "file. [default: imagenet]"),
    head_epochs: Optional[int] = typer.Option(None, "--head-epochs", help="Pretrained --arch: epochs training only "
                                              "the new head, backbone frozen, at --lr. [default: 10]"),
    fine_tune_blocks: Optional[int] = typer.Option(None, "--fine-tune-blocks", help="Pretrained --arch: then the top "
                                                   "N blocks train too (0: head only). [default: 3]"),
    fine_tune_lr: Optional[float] = typer.Option(None, "--fine-tune-lr", help="Pretrained --arch: learning rate of "
                                                 "the fine-tuning epochs. [default: 0.00001]"),
    feature_views: Optional[int] = typer.Option(None, "--feature-views", help="Pretrained --arch: run the frozen "
                                                "part of the backbone once per image for N augmented views and train "
                                                "the top on those (0: the whole net every step)."),
    warm_feature_views: Optional[int] = typer.Option(None, "--warm-feature-views", help="Pretrained --arch: the "
                                                     "same for a warm-started size. [default: as --feature-views]"),
    precision: Optional[str] = typer.Option(None, "--precision", help="auto (mixed bfloat16 where this CPU has "
                                            "bf16 instructions and it measured faster for the net and size; float16 "
                                            "on a GPU; else float32), float32, bfloat16 or float16. The saved model "
                                            "is float32 either way. [default: auto]"),
    backup_every: Optional[float] = typer.Option(None, "--backup-every", help="Seconds between resume backups "
                                                 "(a kill repeats at most that much training); 0: after every "
                                                 "epoch. [default: 30]"),
    size: Optional[List[int]] = typer.Option(None, "--size", help="Input size; repeat for several. [default: 300, 150]"),
    lr: Optional[float] = typer.Option(None, "--lr", help="RMSprop learning rate. [default: 0.001]"),
    schedule: Optional[str] = typer.Option(None, "--schedule", help="cosine (decay from --lr to 0 over the epochs) "
                                           "or constant. [default: cosine]"),
    epochs: Optional[int] = typer.Option(None, "--epochs", help="Most epochs per size. [default: 30]"),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="Images per replica per step; the global "
                                             "batch is this x replicas. [default: 32]"),
    seed: Optional[int] = typer.Option(None, "--seed", help="Same seed, same data: same metrics. [default: 1337]"),
    out: Optional[Path] = typer.Option(None, "--out", help="Run directory to create. [default: runs/train-N]"),
    patience: Optional[int] = typer.Option(None, "--patience",
                                           help="Early stop after this many epochs without a better model. [default: 8]"),
    max_pixels: Optional[int] = typer.Option(None, "--max-pixels",
                                             help="Refuse images larger than this (decompression bombs). [default: 50M]"),
    warm_start: Optional[bool] = typer.Option(None, "--warm-start/--no-warm-start", help="GAP archs: start each "
                                              "larger size from the smaller size's best model. [default: on]"),
    warm_epochs: Optional[int] = typer.Option(None, "--warm-epochs", help="Epochs for a warm-started size. [default: 5 for a pretrained --arch, 10 from scratch]"),
    strategy: Optional[str] = typer.Option(None, "--strategy", help="tf.distribute strategy: auto (mirrored when several "
                                           "GPUs are visible, else default), default (one device), mirrored (all local "
                                           "GPUs, or CPU devices) or multi-worker (machines listed in TF_CONFIG). "
                                           "[default: auto]"),
    add: Optional[List[Path]] = typer.Option(None, "--add", help="A folder of relabelled camera frames (from "
                                             "`edgeclf camera --capture`) in DATA_DIR's class sub-folders; they join "
                                             "the training side only. Repeat for several."),
    resume: Optional[Path] = typer.Option(None, "--resume", help="Continue this killed run from its last backup."),
    cv: Optional[int] = typer.Option(None, "--cv", help="Group K-fold cross-validation with K folds: the mean and "
                                     "sd of the test and camera-sim accuracy per size, to compare recipes."),
) -> None:
    """Train the classifier at 300x300 and 150x150 input and write a run directory."""
    from edgeclf.train.config import TrainConfig
    from edgeclf.train.run import resume as resume_run
    from edgeclf.train.run import train as train_run

    given = {k: v for k, v in locals().items() if k in _TUNABLE and v is not None}
    if resume is not None:
        if given or data_dir is not None or cv is not None:
            names = ", ".join("--" + k.replace("_", "-") for k in given) or "DATA_DIR"
            raise UsageError(f"--resume continues a run with its saved config; drop {names} "
                             "(or start a new run without --resume)")
        with progress_bar(settings.show_progress) as progress:
            result = resume_run(resume, progress=progress)
    else:
        if data_dir is None:
            raise UsageError("DATA_DIR is missing; expected a folder with one sub-folder of images per class "
                             "(or --resume RUN_DIR)")
        if "size" in given:
            given["sizes"] = tuple(given.pop("size"))
        if "add" in given:
            if cv is not None:
                raise UsageError("--add with --cv: cross-validation compares recipes on DATA_DIR alone; drop --add")
            given["add"] = tuple(str(d) for d in given["add"])
        for key in ("validation_dir", "test_dir", "out"):
            if key in given:
                given[key] = str(given[key])
        if cv is not None:
            from edgeclf.train.cv import cross_validate

            with progress_bar(settings.show_progress) as progress:
                res = cross_validate(TrainConfig(data_dir=str(data_dir), **given), cv, progress=progress)
            _cv_summary(res)
            return
        with progress_bar(settings.show_progress) as progress:
            result = train_run(TrainConfig(data_dir=str(data_dir), **given), progress=progress)
    _summary(result)


def _console():  # type: ignore[no-untyped-def]
    import sys

    from rich.console import Console

    return Console(soft_wrap=True, width=None if sys.stdout.isatty() else 160)


def _cv_summary(res) -> None:  # type: ignore[no-untyped-def]
    from rich.table import Table

    table = Table(title=f"{res.arch} · group {res.k}-fold cross-validation", title_justify="left")
    for col in ("size", "test acc mean ± sd", "camera-sim mean ± sd", "val acc mean ± sd", "per fold (test)"):
        table.add_column(col, justify="right")
    for size, m in res.summary.items():
        table.add_row(str(size), f"{m['test_mean']:.3f} ± {m['test_sd']:.3f}",
                      f"{m['camera_sim_mean']:.3f} ± {m['camera_sim_sd']:.3f}", f"{m['val_mean']:.3f} ± {m['val_sd']:.3f}",
                      " ".join(f"{f[size]['test']:.2f}" for f in res.folds))
    console = _console()
    console.print(table)
    console.print(f"cv: {res.run_dir}/cv.json  ({res.seconds / 60:.1f} min)", highlight=False)


def _summary(result) -> None:  # type: ignore[no-untyped-def]
    from rich.table import Table

    table = Table(title=f"{result.arch} · {result.split}", title_justify="left")
    for col in ("size", "test acc [95 % CI]", "groups", "camera-sim [95 % CI]", "val acc", "best epoch", "epochs",
                "stopped", "params", "train img/s"):
        table.add_column(col, justify="right")
    notes = set()
    for size, m in result.sizes.items():
        t, c = m.test, m.camera_sim
        if t is not None:
            test = f"{t.accuracy:.3f} [{t.low:.2f}, {t.high:.2f}]" + ("" if t.enough else " ?")
            cam = f"{c.accuracy:.3f} [{c.low:.2f}, {c.high:.2f}]" if c is not None else "-"
            groups = f"{t.n_groups} / {t.n_images} img"
            if not t.enough:
                notes.add(f"? {t.note}: the test figure says little about new subjects")
        else:
            test, cam, groups = "none (--test-split 0)", "-", "-"
        table.add_row(str(size), test, groups, cam, f"{m.val_accuracy:.3f}", str(m.best_epoch), str(m.epochs_run),
                      m.stopped, f"{m.params:,}", f"{m.train_img_s:.0f}" if m.train_img_s is not None else "-")
    console = _console()
    console.print(table)
    for note in sorted(notes):
        console.print(note, highlight=False)
    if result.worker:
        console.print(f"{result.worker}: trained with the chief, which writes the run directory; this worker's "
                      "scratch copy was removed", highlight=False)
        return
    skipped = f"; {result.skipped} broken image(s) skipped (data_report.json)" if result.skipped else ""
    console.print(f"run: {result.run_dir}  ({result.n_train} train / {result.n_val} validation / {result.n_test} test images, "
                  f"{result.seconds / 60:.1f} min{skipped})", highlight=False)
