"""Where frames go: --save (an annotated video in segments, `edgeclf.edge.recording`), --display (an OpenCV
window, only when a display exists) and --serve (the MJPEG preview, whose encoder draws the status bar itself)."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from edgeclf.edge.annotate import Annotator
from edgeclf.edge.recording import SEGMENT_S, Recording

if TYPE_CHECKING:  # --serve's module (http.server, ssl) is imported by the loop only when --serve is on
    from edgeclf.edge.serve import PreviewServer

log = logging.getLogger(__name__)

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


class Outputs:
    """Annotates only when some output wants the frame; each output is optional."""

    def __init__(self, stack: contextlib.ExitStack, save: Path | None, display: bool,
                 server: PreviewServer | None, fps: float, save_segment: float = SEGMENT_S):
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
        self.save_segment = save_segment
        self._recording: Recording | None = None
        self.quit_requested = False

    def show(self, frame: np.ndarray, label: str, score: float, smoothed: float, fps: float, latency_ms: float) -> None:
        """The annotated frame for --save and --display (every frame). --serve gets the plain frame and the
        answer when its encoder waits for one (at most 15 times a second), and draws the status bar itself,
        off the loop."""
        if self.server is not None and self.server.wants_frames():
            self.server.publish(frame, (label, score, smoothed, fps, latency_ms))
        if not (self.save is not None or self.display):
            return
        canvas = self.annotate(frame, label, score, smoothed, fps, latency_ms)
        if self.save is not None:
            self._write(canvas)
        if self.display:
            import cv2

            cv2.imshow("edgeclf", canvas)
            if cv2.waitKey(1) & 0xFF in (ord("q"), 27):
                self.quit_requested = True

    @property
    def saved_frames(self) -> int:
        return self._recording.frames if self._recording is not None else 0

    def _write(self, canvas: np.ndarray) -> None:
        if self._recording is None:
            assert self.save is not None
            self._recording = Recording(self.save, self.fps, self.save_segment)
            self.stack.callback(self._recording.close)
        self._recording.write(canvas)

    def close(self) -> None:
        if self.display:
            import cv2

            with contextlib.suppress(Exception):
                cv2.destroyAllWindows()
