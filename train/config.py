"""The training configuration: one frozen dataclass, validated before any work starts."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Mapping

from edgeclf.errors import UsageError
from edgeclf.imageio import DEFAULT_MAX_PIXELS
from edgeclf.train.archs import ARCHS
from edgeclf.train.distribute import STRATEGIES
from edgeclf.train.split import DEFAULT_GROUP_PATTERN, SPLIT_MODES

DEFAULT_ARCH = "edge"
DEFAULT_SIZES = (300, 150)
SCHEDULES = ("cosine", "constant")


@dataclass(frozen=True)
class TrainConfig:
    """What `edgeclf train` does. Paths are absolute once resolved (`TrainConfig.resolved`)."""

    data_dir: str
    out: str | None = None  # None: runs/train-N in the working directory
    validation_dir: str | None = None
    validation_split: float = 0.2
    split: str = "auto"  # auto (group when file names show groups), group, stratified
    group_pattern: str = DEFAULT_GROUP_PATTERN
    strict: bool = False
    augment: bool = True
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
    warm_epochs: int = 10  # epochs for a warm-started size (it starts from a trained model)

    def __post_init__(self) -> None:
        if self.arch not in ARCHS:
            raise UsageError(f"--arch {self.arch!r} is not known; expected one of {', '.join(ARCHS)}")
        if not self.sizes or any(not 32 <= s <= 1024 for s in self.sizes) or len(set(self.sizes)) != len(self.sizes):
            raise UsageError(f"--size {list(self.sizes)}: expected distinct sizes between 32 and 1024 (e.g. --size 300 --size 150)")
        small = [s for s in self.sizes if s < ARCHS[self.arch].min_size]
        if small:
            raise UsageError(f"--arch {self.arch} needs --size of at least {ARCHS[self.arch].min_size}, got {small}")
        if not 0.0 < self.validation_split < 1.0:
            raise UsageError(f"--validation-split {self.validation_split} must be between 0 and 1 (e.g. 0.2)")
        if self.split not in SPLIT_MODES:
            raise UsageError(f"--split {self.split!r} is not known; expected one of {', '.join(SPLIT_MODES)}")
        if not (self.lr > 0 and self.lr < float("inf")):
            raise UsageError(f"--lr {self.lr} must be a positive number (e.g. 0.001)")
        if self.schedule not in SCHEDULES:
            raise UsageError(f"--schedule {self.schedule!r} is not known; expected one of {', '.join(SCHEDULES)}")
        for name in ("epochs", "batch_size", "patience", "max_pixels", "warm_epochs"):
            if getattr(self, name) < 1:
                raise UsageError(f"--{name.replace('_', '-')} {getattr(self, name)} must be at least 1")
        if self.strategy not in STRATEGIES:
            raise UsageError(f"--strategy {self.strategy!r} is not supported; expected one of {', '.join(STRATEGIES)}")
        if not 0 <= self.seed < 2**31:
            raise UsageError(f"--seed {self.seed} must be between 0 and 2**31 - 1")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["sizes"] = list(self.sizes)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        kw = {k: v for k, v in d.items() if k in known}
        if "sizes" in kw:
            kw["sizes"] = tuple(int(s) for s in kw["sizes"])
        return cls(**kw)

    def with_(self, **changes: Any) -> "TrainConfig":
        return replace(self, **changes)
