"""`camera --save FILE`: the annotated video, recorded in segments so that a kill loses at most the last one.

A video file is only playable once its writer is released (an mp4's index is written last), so one long file
written to the end is lost whole by a SIGKILL or a power cut. Instead the frames go into segments of
`segment_s` seconds of video: each is written to a temp file beside FILE, released, fsynced and renamed into
place. The first segment is FILE itself, later ones FILE's stem + `.001`, `.002`, ... (`run.mp4`, `run.001.mp4`).
A run shorter than one segment gives exactly FILE.

Temps carry the writer's pid (`.run.mp4.<pid>.tmp.mp4`); one whose process is gone is a kill's leftover and
is removed when the next recording to the same FILE starts. `check_save_path` refuses, before anything runs, a
path that is a folder, a folder that cannot be written (read-only filesystem, permissions) and unknown suffixes.
"""

from __future__ import annotations

import contextlib
import glob
import logging
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from edgeclf.errors import UsageError

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = {".mp4": "mp4v", ".m4v": "mp4v", ".avi": "MJPG", ".mkv": "mp4v"}
SEGMENT_S = 60.0


def check_save_path(path: Path) -> None:
    """One line, before the model loads, for a --save path the run could not write at its end."""
    if path.suffix.lower() not in VIDEO_SUFFIXES:
        raise UsageError(f"--save {path}: expected a video file name ending in {', '.join(VIDEO_SUFFIXES)}")
    if path.is_dir():
        raise UsageError(f"--save {path}: is a folder; give a video file name, e.g. {path / ('run' + path.suffix)}")
    if path.exists() and not path.is_file():
        raise UsageError(f"--save {path}: exists and is not a regular file; pick another name")
    parent = path.parent if str(path.parent) else Path(".")
    existing = parent
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise UsageError(f"--save {path}: {existing} is a file, not a folder; pick another path")
    if not os.access(existing, os.W_OK | os.X_OK):
        why = "is on a read-only filesystem" if _read_only(existing) else "is not writable by this user"
        what = f"the folder {parent}" if existing == parent else f"{parent} cannot be created: {existing}"
        raise UsageError(f"--save {path}: {what} {why}; pick a writable path")


def _read_only(path: Path) -> bool:
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def part_path(target: Path, index: int) -> Path:
    """Segment `index` of a recording: 0 is the target itself, then run.001.mp4, run.002.mp4, ..."""
    return target if index == 0 else target.with_name(f"{target.stem}.{index:03d}{target.suffix}")


def _temp_pattern(target: Path) -> re.Pattern[str]:
    return re.compile(re.escape(f".{target.name}.") + r"(\d+)" + re.escape(f".tmp{target.suffix}") + "$")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temps(target: Path) -> list[Path]:
    """Remove the temps of recordings to `target` whose writer process is gone (a kill's leftovers)."""
    pattern, removed = _temp_pattern(target), []
    parent = target.parent if str(target.parent) else Path(".")
    if not parent.is_dir():
        return removed
    for p in parent.iterdir():
        m = pattern.match(p.name)
        if m and int(m.group(1)) != os.getpid() and not _alive(int(m.group(1))):
            with contextlib.suppress(FileNotFoundError):
                p.unlink()
                removed.append(p)
    return removed


class Recording:
    """Writes frames into segments of `segment_s` seconds (at `fps`), each renamed into place when full."""

    def __init__(self, target: Path, fps: float, segment_s: float = SEGMENT_S):
        self.target = target
        self.fps = fps
        self.segment_frames = max(1, round(segment_s * fps))
        self.frames = 0
        self.parts: list[Path] = []
        self._writer: Any = None
        self._size: tuple[int, int] | None = None
        self._in_part = 0
        self._tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp{target.suffix}")
        target.parent.mkdir(parents=True, exist_ok=True)
        for p in remove_stale_temps(target):
            log.warning("--save: removed %s, left by a recording that was killed", p)

    def write(self, canvas: np.ndarray) -> None:
        import cv2

        if self._writer is None:
            if self._size is None:
                self._size = (canvas.shape[1], canvas.shape[0])
            fourcc = cv2.VideoWriter_fourcc(*VIDEO_SUFFIXES[self.target.suffix.lower()])
            self._writer = cv2.VideoWriter(str(self._tmp), fourcc, self.fps, self._size)
            if not self._writer.isOpened():
                self._writer = None
                raise UsageError(f"--save {self.target}: OpenCV cannot write this video format here; try a .avi name")
        if (canvas.shape[1], canvas.shape[0]) != self._size:
            canvas = cv2.resize(canvas, self._size)  # the source came back at another resolution
        self._writer.write(canvas)
        self.frames += 1
        self._in_part += 1
        if self._in_part >= self.segment_frames:
            self._finish_part()

    def _finish_part(self) -> None:
        self._writer.release()
        self._writer = None
        self._in_part = 0
        with open(self._tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        final = part_path(self.target, len(self.parts))
        os.replace(self._tmp, final)
        if not self.parts:  # a new recording: parts of an older, longer one under this name would mislead
            for old in self.target.parent.glob(f"{glob.escape(self.target.stem)}.[0-9][0-9][0-9]{self.target.suffix}"):
                with contextlib.suppress(FileNotFoundError):
                    old.unlink()
        self.parts.append(final)

    def close(self) -> None:
        """Finish the last segment (a run stopped by an error keeps what it recorded)."""
        if self._writer is not None:
            self._finish_part()
        if self.parts:
            more = f" in {len(self.parts)} segments ({self.parts[0].name} ... {self.parts[-1].name})" \
                if len(self.parts) > 1 else ""
            log.info("saved %d annotated frames to %s%s", self.frames, self.target, more)
