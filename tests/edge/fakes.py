"""Fakes for hardware that is not here, behind the same interfaces as the real thing.

`FakeDevice` + `FakeCamera`: a live `FrameSource` driven by a script of steps shared by every camera
opened on the device (so a reopen continues where the device is): frames, read failures, disconnects
(reads fail and the next opens fail), stalls (a read blocks, then returns a frame that must never be
used), and the end. Frames carry their id in their name (`f17`), so tests can see exactly which frames
were classified.

`fake_picamera2_module`: a `picamera2` module with the documented calls the edge uses
(`Picamera2.global_camera_info`, `Picamera2(camera_num)`, `create_video_configuration(main=...)`,
`configure`, `start`, `capture_array("main")`, `stop`, `close`), delivering "RGB888" arrays, which are
B, G, R in memory.
"""

from __future__ import annotations

import threading
import time
import types
from typing import Sequence

import numpy as np

from edgeclf.edge.sources import Frame, FrameSource, SourceReadError
from edgeclf.errors import SourceError

BGR = {"blue": (255, 0, 0), "green": (0, 255, 0), "red": (0, 0, 255)}


class FakeDevice:
    """Steps: ("frames", n, colour) | ("fail",) | ("disconnect", failed_opens) | ("stall", seconds) | ("end",)."""

    def __init__(self, steps: Sequence[tuple], size: tuple[int, int] = (64, 48), period: float = 0.01,
                 images: Sequence[np.ndarray] | None = None):
        self.steps = list(steps)
        self.size = size
        self.period = period  # seconds per frame, like a camera's frame interval
        self.images = list(images or [])
        self.lock = threading.Lock()
        self.next_id = 0
        self.delivered: list[str] = []  # ids handed out by read(), in order (stale ones included)
        self.stale: list[str] = []  # ids returned by a read the watchdog had given up on
        self.opens = 0
        self.failed_opens = 0
        self._pending_open_failures = 0
        self._remaining = 0
        self._colour = "red"

    def _step(self) -> tuple:
        with self.lock:
            if self._remaining > 0:
                self._remaining -= 1
                return ("frame", self._colour)
            if not self.steps:
                return ("end",)
            step = self.steps.pop(0)
            if step[0] == "frames":
                self._remaining, self._colour = step[1] - 1, step[2]
                return ("frame", self._colour)
            if step[0] == "disconnect":
                self._pending_open_failures = step[1]
            return step

    def image(self, colour: str, fid: int) -> np.ndarray:
        if self.images:
            return self.images[fid % len(self.images)]
        w, h = self.size
        img = np.empty((h, w, 3), np.uint8)
        img[:] = BGR[colour]
        return img

    def frame(self, colour: str) -> Frame:
        with self.lock:
            self.next_id += 1
            fid = self.next_id
        return Frame(self.image(colour, fid), f"f{fid}")


class FakeCamera(FrameSource):
    live = True
    fps = 0.0

    def __init__(self, device: FakeDevice):
        self.device = device
        self.name = "fake camera"
        self.is_open = False

    def open(self) -> None:
        d = self.device
        with d.lock:
            if d._pending_open_failures > 0:
                d._pending_open_failures -= 1
                d.failed_opens += 1
                raise SourceError("fake camera: no such device")
            d.opens += 1
        self.is_open = True

    def read(self, out: np.ndarray | None = None) -> Frame | None:
        if not self.is_open:
            raise SourceReadError("fake camera: not open")
        d = self.device
        step = d._step()
        if step[0] == "end":
            return None
        if step[0] in ("fail", "disconnect"):
            raise SourceReadError(f"fake camera: {step[0]}")
        if step[0] == "stall":
            time.sleep(step[1])
            fr = d.frame("blue")
            with d.lock:
                d.stale.append(fr.name)
                d.delivered.append(fr.name)
            return fr
        time.sleep(d.period)
        fr = d.frame(step[1])
        with d.lock:
            d.delivered.append(fr.name)
        return fr

    def close(self) -> None:
        self.is_open = False


def fake_picamera2_module(colour_bgr: tuple[int, int, int], cameras: int = 1, size_seen: list | None = None,
                          period: float = 0.005) -> types.ModuleType:
    """A stand-in for the `picamera2` package: one class, the documented methods the edge calls."""
    mod = types.ModuleType("picamera2")

    class Picamera2:
        @staticmethod
        def global_camera_info() -> list[dict]:
            return [{"Model": "imx708", "Num": i, "Id": f"/base/fake/cam{i}"} for i in range(cameras)]

        def __init__(self, camera_num: int = 0):
            if camera_num >= cameras:
                raise IndexError("no camera")
            self.config: dict | None = None
            self.started = False

        def create_video_configuration(self, main: dict | None = None, **kwargs) -> dict:
            return {"use_case": "video", "main": {"format": "XBGR8888", "size": (640, 480), **(main or {})}}

        def create_preview_configuration(self, main: dict | None = None, **kwargs) -> dict:
            return {"use_case": "preview", "main": {"format": "XBGR8888", "size": (640, 480), **(main or {})}}

        def configure(self, config: dict) -> None:
            self.config = config
            if size_seen is not None:
                size_seen.append(dict(config["main"]))

        def start(self) -> None:
            assert self.config is not None, "configure() before start()"
            self.started = True

        def capture_array(self, name: str = "main") -> np.ndarray:
            assert self.started and name == "main"
            time.sleep(period)
            w, h = self.config["main"]["size"]
            fmt = self.config["main"]["format"]
            assert fmt == "RGB888", fmt
            img = np.empty((h, w, 3), np.uint8)
            img[:] = colour_bgr  # "RGB888": B, G, R bytes per pixel
            return img

        def stop(self) -> None:
            self.started = False

        def close(self) -> None:
            pass

    mod.Picamera2 = Picamera2
    return mod
