"""The run directory: the contract between `edgeclf train` (writes it) and `edgeclf convert` (reads it).

    runs/train-N/
      run.json          this contract (schema edgeclf.run/1): labels, task, arch, data dir, models per size
      split.json        files on each side of the split, relative to the data dir, with their labels
                        (images of `train --add` folders: absolute paths, training side only)
      sources.json      where each training image came from (DATA_DIR or an --add folder) and the counts
      labels.txt        one label per line, in output order
      config.json       the resolved training config
      models/<size>.keras   best model per input size (safe-mode loadable, no Lambda layers)
      metrics.json, history-<size>.csv, curves.png, confusion.png, data_report.json
      bundles/<size>-<quant>/   written by `edgeclf convert`
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from .atomic import write_json, write_text
from .errors import RunError
from .preprocess import PreprocessSpec

RUN_SCHEMA = "edgeclf.run"
RUN_SCHEMA_VERSION = 1
RUN_FILE = "run.json"
SPLIT_FILE = "split.json"
CONFIG_FILE = "config.json"  # the resolved training options (train writes it first, before any work)
SOURCES_FILE = "sources.json"  # where each training image came from (edgeclf.train.add.sources)


@dataclass(frozen=True)
class RunModel:
    size: int
    file: str  # relative to the run dir
    preprocess: PreprocessSpec


@dataclass(frozen=True)
class RunInfo:
    labels: tuple[str, ...]
    task: str  # "binary" (one sigmoid; labels[1] is the positive class) or "multiclass" (softmax)
    arch: str
    data_dir: str
    models: Mapping[int, RunModel]
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def positive_label(self) -> str | None:
        return self.labels[1] if self.task == "binary" else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": RUN_SCHEMA, "schema_version": RUN_SCHEMA_VERSION,
            "labels": list(self.labels), "task": self.task, "arch": self.arch, "data_dir": self.data_dir,
            "models": {str(s): {"file": m.file, "preprocess": m.preprocess.to_dict()} for s, m in self.models.items()},
            **({"extra": dict(self.extra)} if self.extra else {}),
        }


@dataclass(frozen=True)
class Split:
    """Files relative to `data_dir` (or to `val_dir` / `test_dir` when those were given), with label indices.

    Three sides: train; val (early stopping and the pick of the best epoch); test (measured once, at the
    end, by a model that never saw it nor was chosen on it). Old runs have no test side.
    """

    strategy: str  # "group", "stratified" or "given"
    train: tuple[tuple[str, int], ...]
    val: tuple[tuple[str, int], ...]
    val_dir: str | None = None  # set when --validation-dir gave the validation files
    test: tuple[tuple[str, int], ...] = ()
    test_dir: str | None = None  # set when --test-dir gave the test files

    def to_dict(self) -> dict[str, Any]:
        return {"strategy": self.strategy, "val_dir": self.val_dir, "test_dir": self.test_dir,
                "train": [list(x) for x in self.train], "val": [list(x) for x in self.val],
                "test": [list(x) for x in self.test]}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Split":
        def side(key: str) -> tuple[tuple[str, int], ...]:
            return tuple((str(p), int(i)) for p, i in d.get(key, ()))

        return cls(d["strategy"], side("train"), side("val"), d.get("val_dir"), side("test"), d.get("test_dir"))

    def paths(self, data_dir: str | os.PathLike[str]) -> "SplitPaths":
        """Absolute paths of every side, each under the folder it came from."""
        root = Path(data_dir)
        vroot = Path(self.val_dir) if self.val_dir else root
        troot = Path(self.test_dir) if self.test_dir else root
        return SplitPaths(tuple((str(root / p), y) for p, y in self.train),
                          tuple((str(vroot / p), y) for p, y in self.val),
                          tuple((str(troot / p), y) for p, y in self.test))


@dataclass(frozen=True)
class SplitPaths:
    train: tuple[tuple[str, int], ...]
    val: tuple[tuple[str, int], ...]
    test: tuple[tuple[str, int], ...]

    def missing(self) -> list[str]:
        return [p for p, _ in self.train + self.val + self.test if not Path(p).is_file()]


class RunDir:
    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)

    def model_path(self, size: int) -> Path:
        return self.path / "models" / f"{size}.keras"

    @property
    def bundles(self) -> Path:
        return self.path / "bundles"

    def write_info(self, info: RunInfo) -> None:
        write_text(self.path / "labels.txt", "\n".join(info.labels) + "\n")
        write_json(self.path / RUN_FILE, info.to_dict())  # last: a run without run.json is unfinished

    def write_split(self, split: Split) -> None:
        write_json(self.path / SPLIT_FILE, split.to_dict())

    def read_info(self) -> RunInfo:
        f = self.path / RUN_FILE
        if not self.path.is_dir():
            raise RunError(f"{self.path}: no such run directory; expected the folder `edgeclf train` wrote (runs/train-N)")
        try:
            d = json.loads(f.read_text("utf-8"))
        except FileNotFoundError:
            raise RunError(f"{self.path}: no {RUN_FILE}; this is not a finished training run "
                           "(train again, or `edgeclf train --resume`)") from None
        except json.JSONDecodeError as e:
            raise RunError(f"{f}: not valid JSON ({e}); the run is damaged; train again") from None
        if d.get("schema") != RUN_SCHEMA or d.get("schema_version") != RUN_SCHEMA_VERSION:
            raise RunError(f"{f}: schema {d.get('schema')!r} v{d.get('schema_version')!r} is not "
                           f"{RUN_SCHEMA!r} v{RUN_SCHEMA_VERSION}; train again with this edgeclf")
        try:
            models = {int(s): RunModel(int(s), m["file"], PreprocessSpec.from_dict(m["preprocess"]))
                      for s, m in d["models"].items()}
            return RunInfo(tuple(d["labels"]), d["task"], d["arch"], d["data_dir"], models, d.get("extra", {}))
        except (KeyError, TypeError, ValueError) as e:
            raise RunError(f"{f}: malformed ({e!r}); train again") from None

    def read_split(self) -> Split:
        f = self.path / SPLIT_FILE
        try:
            return Split.from_dict(json.loads(f.read_text("utf-8")))
        except FileNotFoundError:
            raise RunError(f"{self.path}: no {SPLIT_FILE}; the run is incomplete; train again") from None
        except (KeyError, TypeError, ValueError) as e:
            raise RunError(f"{f}: malformed ({e!r}); train again") from None
