"""Where annotated frames go: --save (mp4 via cv2.VideoWriter, renamed into place at the end), --display
(an OpenCV window, only when a display exists) and --serve (the MJPEG preview)."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

from edgeclf.atomic import atomic_path
from edgeclf.edge.annotate import Annotator
from edgeclf.edge.serve import PreviewServer
from edgeclf.errors import UsageError

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = {".mp4": "mp4v", ".m4v": "mp4v", ".avi": "MJPG", ".mkv": "mp4v"}


def display_available() -> tuple[bool, str]:
    """(yes, why not): a window needs a display server and an OpenCV built with a GUI backend."""
    import cv2

    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return False, "no DISPLAY or WAYLAND_DISPLAY (ssh session or no desktop)"
    build = cv2.getBuildInformation().splitlines()
    gui = [ln.split(":", 1)[1].strip() for ln in build if ln.strip().startswith("GUI:")]
    if gui and gui[0].upper() == "NONE":
        return False, "this OpenCV has no GUI (opencv-python-headless); `pip install opencv-python` for windows"
    return True, ""


def check_save_path(path: Path) -> None:
    if path.suffix.lower() not in VIDEO_SUFFIXES:
        raise UsageError(f"--save {path}: expected a video file name ending in {', '.join(VIDEO_SUFFIXES)}")
    parent = path.parent if str(path.parent) else Path(".")
    if parent.exists() and not os.access(parent, os.W_OK):
        raise UsageError(f"--save {path}: the folder {parent} is not writable; pick another path")


class Outputs:
    """Annotates only when some output wants the frame; each output is optional."""

    def __init__(self, stack: contextlib.ExitStack, save: Path | None, display: bool,
                 server: PreviewServer | None, fps: float):
        self.stack = stack
        self.save = save
        self.server = server
        self.fps = fps if fps and fps > 0 else 15.0
        self.annotate = Annotator()
        self.display = False
        if display:
            ok, why = display_available()
            if ok:
                self.display = True
            else:
                log.warning("--display: %s; running headless", why)
        self._writer: Any = None
        self._tmp: Path | None = None
        self._size: tuple[int, int] | None = None
        self.saved_frames = 0
        self.quit_requested = False

    def wanted(self) -> bool:
        return self.save is not None or self.display or (self.server is not None and self.server.wants_frames())

    def show(self, frame: np.ndarray, label: str, score: float, smoothed: float, fps: float, latency_ms: float) -> None:
        if not self.wanted():
            return
        canvas = self.annotate(frame, label, score, smoothed, fps, latency_ms)
        if self.save is not None:
            self._write(canvas)
        if self.server is not None:
            self.server.publish(canvas)
        if self.display:
            import cv2

            cv2.imshow("edgeclf", canvas)
            if cv2.waitKey(1) & 0xFF in (ord("q"), 27):
                self.quit_requested = True

    def _write(self, canvas: np.ndarray) -> None:
        import cv2

        if self._writer is None:
            assert self.save is not None
            h, w = canvas.shape[:2]
            self._tmp = self.stack.enter_context(atomic_path(self.save))
            self.stack.callback(self._release)  # runs before atomic_path renames the finished file
            fourcc = cv2.VideoWriter_fourcc(*VIDEO_SUFFIXES[self.save.suffix.lower()])
            self._writer = cv2.VideoWriter(str(self._tmp), fourcc, self.fps, (w, h))
            if not self._writer.isOpened():
                raise UsageError(f"--save {self.save}: OpenCV cannot write this video format here; try a .avi name")
            self._size = (w, h)
        if (canvas.shape[1], canvas.shape[0]) != self._size:
            canvas = cv2.resize(canvas, self._size)  # the source came back at another resolution
        self._writer.write(canvas)
        self.saved_frames += 1

    def _release(self) -> None:
        if self._writer is not None:
            self._writer.release()
            self._writer = None
            log.info("saved %d annotated frames to %s", self.saved_frames, self.save)

    def close(self) -> None:
        if self.display:
            import cv2

            with contextlib.suppress(Exception):
                cv2.destroyAllWindows()
