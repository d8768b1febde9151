"""`edgeclf train DATA --add DIR`: relabelled camera frames (from `edgeclf camera --capture`) join the next run.

Each DIR holds class sub-folders named like DATA's classes (a subset is fine: a camera may only have been
unsure about one class); any other folder holding images is refused with one line naming it. The JSON
sidecars `--capture` writes beside each frame are not images and are skipped quietly. Every image is
checked as DATA's are (`edgeclf.train.data.check_files`: both decoders, broken files left out).

The added images join the **training** side only, never validation or test. They are camera frames of
whatever stood in front of the device, possibly subjects of the test split, with no subject name in their
file names and many near-identical frames: spread over the sides they would put the same scene on both
sides of the split, and they would change the test side from one run to the next. Kept on the training
side, the test figure stays measured on DATA's own held-out subjects and runs with and without `--add`
stay comparable; docs/retraining.md says what that figure then means.

The run records where each training image came from in `sources.json` (`edgeclf.rundir.SOURCES_FILE`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from edgeclf.errors import DataError, UsageError
from edgeclf.imageio import IMAGE_EXTENSIONS
from edgeclf.rundir import Split
from edgeclf.train.data import Bad, check_files

log = logging.getLogger(__name__)

SIDECAR_SUFFIX = ".json"  # what `camera --capture` writes beside each frame


@dataclass(frozen=True)
class Added:
    """The usable images of one --add folder: (absolute path, label index), plus what was left out."""

    root: Path
    items: tuple[tuple[str, int], ...]
    bad: tuple[Bad, ...] = ()
    ignored: tuple[str, ...] = ()  # files that are neither images nor sidecars

    def report(self, labels: Sequence[str]) -> dict[str, Any]:
        counts = {name: 0 for name in labels}
        for _, i in self.items:
            counts[labels[i]] += 1
        return {"dir": str(self.root), "usable": len(self.items), "per_class": counts,
                "bad": [{"file": b.file, "reason": b.reason} for b in self.bad], "ignored": list(self.ignored)}


def check_add_dirs(add: Sequence[str], data_dir: str, others: Sequence[str | None]) -> None:
    """Refuse an --add folder that does not exist or is DATA_DIR, --validation-dir or --test-dir itself."""
    import os

    seen = set()
    for d in add:
        p = Path(d)
        if not p.is_dir():
            raise UsageError(f"--add {d}: no such folder; expected a folder of class sub-folders (e.g. the one "
                             "`edgeclf camera --capture` wrote, relabelled)")
        real = os.path.realpath(p)
        for name, other in (("DATA_DIR", data_dir), *((f"another folder of this run ({o})", o) for o in others)):
            if other and real == os.path.realpath(other):
                raise UsageError(f"--add {d} is {name} itself; give the folder of relabelled frames only")
        if real in seen:
            raise UsageError(f"--add {d}: given twice; give each folder once")
        seen.add(real)


def _files(root: Path, labels: Sequence[str]) -> tuple[list[tuple[str, int]], list[str]]:
    files: list[tuple[str, int]] = []
    ignored: list[str] = []
    for entry in sorted(root.iterdir()):
        if entry.name.startswith("."):
            continue
        if entry.is_file():
            if entry.name.lower().endswith(IMAGE_EXTENSIONS):
                raise DataError(f"--add {root}: {entry.name} is not in a class folder; move it into one of "
                                f"{', '.join(labels)} (or delete it)")
            continue
        images = sorted(p for p in entry.rglob("*") if p.is_file() and not p.name.startswith(".")
                        and not any(part.startswith(".") for part in p.relative_to(entry).parts))
        frames = [p for p in images if p.name.lower().endswith(IMAGE_EXTENSIONS)]
        if not frames:
            continue  # an emptied folder (every frame relabelled elsewhere or deleted)
        if entry.name not in labels:
            raise DataError(f"--add {root}: class folder {entry.name!r} ({len(frames)} image(s)) is not one of the "
                            f"data's classes ({', '.join(labels)}); move its images into one of those folders or "
                            "delete it")
        index = labels.index(entry.name)
        files += [(str(p.resolve()), index) for p in frames]
        ignored += [p.relative_to(root).as_posix() for p in images
                    if p not in frames and p.suffix.lower() != SIDECAR_SUFFIX]
    return files, ignored


def load_added(dirs: Sequence[str], labels: Sequence[str], max_pixels: int, strict: bool) -> tuple[Added, ...]:
    """Check every --add folder against DATA's classes and every image in it (broken ones left out)."""
    out = []
    for d in dirs:
        root = Path(d).resolve()
        files, ignored = _files(root, list(labels))
        if not files:
            raise DataError(f"--add {d}: no images in class folders named like the data's ({', '.join(labels)}); "
                            "sort the kept frames into those folders first")
        ok, bad, _ = check_files(Path("/"), files, max_pixels)
        if bad and strict:
            raise DataError(f"--add {d}: {len(bad)} broken image(s) and --strict is on: {bad[0].file}: "
                            f"{bad[0].reason}; remove them or drop --strict")
        if bad:
            log.warning("--add %s: skipping %d broken image(s) (listed in data_report.json)", d, len(bad))
        out.append(Added(root, tuple(ok), tuple(bad), tuple(ignored)))
    return tuple(out)


def with_added(split: Split, added: Sequence[Added]) -> Split:
    """The split with the added images on its training side (absolute paths; `Split.paths` keeps them)."""
    from dataclasses import replace

    extra = tuple(item for a in added for item in a.items)
    return replace(split, train=split.train + extra) if extra else split


def sources(data_dir: str, split: Split, added: Sequence[Added], labels: Sequence[str]) -> dict[str, Any]:
    """Where each image of the run came from: DATA_DIR's split, and each --add folder's files."""
    origin = {path: f"add:{a.root}" for a in added for path, _ in a.items}
    return {
        "data_dir": data_dir,
        "added": [a.report(labels) for a in added],
        "sides": {"train": len(split.train), "val": len(split.val), "test": len(split.test),
                  "train_added": sum(1 for p, _ in split.train if p in origin)},
        "train": [{"file": p, "label": labels[y], "source": origin.get(p, "data")} for p, y in split.train],
    }
