"""Frame sources behind one interface: cameras, video files, image folders, streams, the Pi camera module.

A `FrameSource` is opened, read until it returns None (end of a file or folder) and closed. `read` raises
`SourceReadError` when a live source fails (the loop then reconnects). Live sources (cameras, URLs,
picamera) are read by a capture thread that keeps only the newest frame (`edgeclf.edge.capture`); files
and folders are read by the loop itself, every frame, at their own pace.

`--source` strings: a camera index (`0`), a V4L2 device (`/dev/video0`), `picamera` or `picamera:N`, a
video file, a folder or glob of images, or an `rtsp://`, `http(s)://` URL.
"""

from __future__ import annotations

import glob
import logging
import os
import re
import sys
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Callable, NamedTuple, Sequence

import numpy as np

from edgeclf.errors import DataError, SourceError
from edgeclf.imageio import DEFAULT_MAX_PIXELS, IMAGE_EXTENSIONS, read_bgr
from edgeclf.safetext import redact

log = logging.getLogger(__name__)

URL_SCHEMES = ("rtsp://", "rtsps://", "http://", "https://", "rtmp://", "udp://", "tcp://")
VIDEO_HINT = ("a camera index (0), /dev/videoN, picamera, a video file, a folder or glob of images, "
              "or an rtsp:// or http:// URL")


class SourceReadError(SourceError):
    """A live source failed to deliver a frame (read error, device gone); the loop reconnects."""


class Frame(NamedTuple):
    image: np.ndarray  # BGR uint8, HxWx3
    name: str = ""  # file name for folders, frame id for fakes; "" for cameras


class FrameSource(ABC):
    """open() -> read()* -> close(). `live`: newest-frame-only capture and reconnects; else every frame."""

    name: str = "source"
    live: bool = False
    fps: float = 0.0  # frames per second the source runs at, 0 when unknown

    @abstractmethod
    def open(self) -> None:
        """Open the device or file; raise SourceError (naming it and what exists) when it cannot be."""

    @abstractmethod
    def read(self, out: np.ndarray | None = None) -> Frame | None:
        """The next frame (written into `out` when the source can), None at the end, or SourceReadError."""

    @abstractmethod
    def close(self) -> None:
        """Release the device or file; safe to call twice."""


def list_sources() -> str:
    """What can be opened here, for error messages: V4L2 devices, the Pi camera module, and the other kinds."""
    found = []
    devices = sorted(glob.glob("/dev/video*"), key=lambda p: (len(p), p))
    found += devices
    if _picamera_module_available():
        found.append("picamera")
    here = "cameras here: " + (", ".join(found) if found else "none found (no /dev/video*, no picamera2)")
    return f"{here}; --source also takes {VIDEO_HINT}"


def quiet_opencv() -> None:
    """Keep OpenCV's and FFmpeg's own messages (tried backends, refused connections, Debian's GStreamer
    backend failing on a file) off stderr; errors still reach the user as one SourceError line. The CLI
    calls this unless -v."""
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET, read when FFmpeg first opens
    import cv2

    logging_mod = getattr(getattr(cv2, "utils", None), "logging", None)
    if logging_mod is not None and hasattr(logging_mod, "setLogLevel"):
        logging_mod.setLogLevel(logging_mod.LOG_LEVEL_SILENT)
    elif hasattr(cv2, "setLogLevel"):
        cv2.setLogLevel(0)  # 0 = SILENT in OpenCV's numbering


def _picamera_module_available() -> bool:
    import importlib.util

    if "picamera2" in sys.modules:
        return sys.modules["picamera2"] is not None
    try:
        return importlib.util.find_spec("picamera2") is not None
    except (ImportError, ValueError):
        return False


class VideoCaptureSource(FrameSource):
    """cv2.VideoCapture: camera index, /dev/videoN, video file or stream URL."""

    def __init__(self, target: int | str, kind: str, size: tuple[int, int] | None = None,
                 open_timeout_s: float = 10.0, read_timeout_s: float = 10.0, max_pixels: int = DEFAULT_MAX_PIXELS):
        self.target = target
        self.max_pixels = max_pixels
        self.kind = kind  # "camera", "file" or "url"
        self.live = kind != "file"
        # The name is what events, /status, logs and errors show: a stream URL's password never is.
        self.name = f"camera {target}" if kind == "camera" and isinstance(target, int) else redact(str(target))
        self.size = size
        self.open_timeout_s = open_timeout_s
        self.read_timeout_s = read_timeout_s
        self._cap = None
        self._first: np.ndarray | None = None
        self.frames_total = 0  # a file's frame count as its header announces it (0: unknown)
        self.frames_read = 0

    def open(self) -> None:
        import cv2

        params: list[int] = []
        api = cv2.CAP_ANY
        if self.kind == "url":
            api = cv2.CAP_FFMPEG
            params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, int(self.open_timeout_s * 1000),
                      cv2.CAP_PROP_READ_TIMEOUT_MSEC, int(self.read_timeout_s * 1000)]
        elif self.kind == "camera" and sys.platform.startswith("linux"):
            api = cv2.CAP_V4L2
        cap = cv2.VideoCapture(self.target, api, params) if params else cv2.VideoCapture(self.target, api)
        if not cap.isOpened():
            cap.release()
            raise SourceError(self._cannot_open())
        if self.live:
            cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # newest frame; ignored where unsupported
        if self.size and self.kind == "camera":
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.size[0])
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.size[1])
        self.fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        if self.fps > 240 or self.fps < 0:
            self.fps = 0.0
        self._cap = cap
        w, h = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH) or 0), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT) or 0)
        if w * h > self.max_pixels:  # refused before a frame is read into the rotating buffers
            self.close()
            raise SourceError(self._too_big(w, h))
        if self.kind == "file":
            self.frames_total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
            ok, first = cap.read()
            if not ok or first is None:
                self.close()
                raise SourceError(f"{self.name}: OpenCV opened it but it holds no readable video frames; "
                                  f"re-encode it (e.g. H.264 mp4) or pass another source ({list_sources()})")
            self._first = self._capped(first)

    def _too_big(self, w: int, h: int) -> str:
        return (f"{self.name}: {w}x{h} frames = {w * h:,} pixels are over the cap of {self.max_pixels:,}; "
                "re-encode it smaller, ask the camera for less (--size), or raise --max-pixels if it is trusted")

    def _capped(self, img: np.ndarray) -> np.ndarray:
        """A frame over the pixel cap (a stream that changed size mid-way) is an error, never kept."""
        if img.shape[0] * img.shape[1] > self.max_pixels:
            msg = self._too_big(img.shape[1], img.shape[0])
            raise SourceError(msg) if self.kind == "file" else SourceReadError(msg)
        return img

    def _cannot_open(self) -> str:
        if self.kind == "camera":
            what = self.name
            return (f"{what}: cannot be opened (missing, busy or no permission: add the user to group 'video'); "
                    f"{list_sources()}")
        if self.kind == "url":
            return (f"{self.name}: cannot open the stream (wrong URL, host unreachable or no FFmpeg support in this "
                    f"OpenCV); {list_sources()}")
        return (f"{self.name}: OpenCV cannot read it as a video (corrupt, or a codec this build lacks); "
                f"{list_sources()}")

    def read(self, out: np.ndarray | None = None) -> Frame | None:
        if self._cap is None:
            raise SourceReadError(f"{self.name}: not open")
        if self._first is not None:
            img, self._first = self._first, None
            self.frames_read += 1
            return Frame(img)
        ok, img = self._cap.read(out) if out is not None else self._cap.read()
        if ok and img is not None:
            self.frames_read += 1
            return Frame(self._capped(img))
        if self.kind == "file":
            if 0 < self.frames_read < self.frames_total:
                log.warning("%s: the video ended after %d of the %d frames its header announces; the file is "
                            "truncated or damaged and the rest was not classified (re-copy or re-encode it)",
                            self.name, self.frames_read, self.frames_total)
                self.frames_total = 0  # said once
            return None
        raise SourceReadError(f"{self.name}: no frame (device disconnected or stream interrupted)")

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


class ImageFolderSource(FrameSource):
    """Image files in name order (a folder, a glob, or one file). Broken files are logged and skipped."""

    def __init__(self, files: Sequence[Path], name: str, on_skip: Callable[[Path, str], None] | None = None,
                 max_pixels: int = DEFAULT_MAX_PIXELS):
        self.files = list(files)
        self.max_pixels = max_pixels
        self.name = name
        self.on_skip = on_skip
        self._i = 0
        self.skipped = 0

    def open(self) -> None:
        if not self.files:
            raise SourceError(f"{self.name}: no images ({', '.join(IMAGE_EXTENSIONS)}); {list_sources()}")
        self._i = 0

    def read(self, out: np.ndarray | None = None) -> Frame | None:
        while self._i < len(self.files):
            path = self.files[self._i]
            self._i += 1
            try:
                return Frame(read_bgr(path, self.max_pixels), path.name)
            except DataError as e:
                self.skipped += 1
                log.warning("skipped %s", e)
                if self.on_skip:
                    self.on_skip(path, str(e))
        return None

    def close(self) -> None:
        self._i = len(self.files)


class PicameraSource(FrameSource):
    """The Pi camera module through picamera2 (libcamera); OpenCV cannot open it on current Pi OS.

    "RGB888" in picamera2/libcamera names the byte order of a little-endian word: the array is B, G, R per
    pixel, which is OpenCV's BGR already, so no conversion is done here.
    """

    live = True

    def __init__(self, camera_num: int = 0, size: tuple[int, int] | None = None):
        self.camera_num = camera_num
        self.size = size or (640, 480)
        self.name = "picamera" if camera_num == 0 else f"picamera:{camera_num}"
        self._cam = None

    def open(self) -> None:
        try:
            from picamera2 import Picamera2
        except ImportError:
            raise SourceError("picamera: the picamera2 module is not installed; on Pi OS `sudo apt install "
                              "python3-picamera2` and make the venv with --system-site-packages; "
                              f"{list_sources()}") from None
        try:
            cameras = Picamera2.global_camera_info()
        except Exception as e:  # libcamera not running, no permission
            raise SourceError(f"picamera: libcamera cannot list cameras ({e}); {list_sources()}") from None
        if self.camera_num >= len(cameras):
            models = ", ".join(f"{c.get('Num', i)}: {c.get('Model', '?')}" for i, c in enumerate(cameras)) or "none"
            raise SourceError(f"{self.name}: no such camera module (found: {models}); check the ribbon cable and "
                              f"`rpicam-hello --list-cameras`; {list_sources()}")
        try:
            cam = Picamera2(self.camera_num)
            config = cam.create_video_configuration(main={"size": tuple(self.size), "format": "RGB888"})
            cam.configure(config)
            cam.start()
        except Exception as e:  # busy (another process holds it), bad size
            raise SourceError(f"{self.name}: cannot start the camera module ({e}); "
                              "is another program using it?") from None
        self._cam = cam
        self.fps = 0.0

    def read(self, out: np.ndarray | None = None) -> Frame | None:
        if self._cam is None:
            raise SourceReadError(f"{self.name}: not open")
        try:
            arr = self._cam.capture_array("main")
        except Exception as e:
            raise SourceReadError(f"{self.name}: capture failed ({e})") from None
        if arr is None or arr.ndim != 3:
            raise SourceReadError(f"{self.name}: capture returned no image")
        return Frame(arr[:, :, :3] if arr.shape[2] == 4 else arr)

    def close(self) -> None:
        cam, self._cam = self._cam, None
        if cam is not None:
            for step in (cam.stop, cam.close):
                try:
                    step()
                except Exception as e:  # closing a camera that already vanished
                    log.debug("picamera close: %s", e)


def _natural_key(p: Path) -> list[object]:
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", p.name)]


def image_files(folder: Path) -> list[Path]:
    return sorted((p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS),
                  key=_natural_key)


def parse_size(size: str | None) -> tuple[int, int] | None:
    if not size:
        return None
    m = re.fullmatch(r"(\d+)[xX](\d+)", size.strip())
    if not m or int(m.group(1)) <= 0 or int(m.group(2)) <= 0:
        from edgeclf.errors import UsageError

        raise UsageError(f"--size {size!r}: expected WIDTHxHEIGHT, e.g. 640x480")
    return int(m.group(1)), int(m.group(2))


def make_source(spec: str, size: tuple[int, int] | None = None,
                on_skip: Callable[[Path, str], None] | None = None, max_pixels: int = DEFAULT_MAX_PIXELS) -> FrameSource:
    """The FrameSource a `--source` string names (not opened yet); frames over `max_pixels` are refused."""
    s = spec.strip()
    if s.isdigit():
        return VideoCaptureSource(int(s), "camera", size, max_pixels=max_pixels)
    if s == "picamera" or s.startswith("picamera:"):
        num = s.partition(":")[2] or "0"
        if not num.isdigit():
            raise SourceError(f"--source {spec!r}: expected picamera or picamera:N; {list_sources()}")
        return PicameraSource(int(num), size)
    if s.lower().startswith(URL_SCHEMES):
        return VideoCaptureSource(s, "url", max_pixels=max_pixels)
    if re.fullmatch(r"/dev/video\d+", s):
        if not os.path.exists(s):
            raise SourceError(f"{s}: no such camera device; {list_sources()}")
        return VideoCaptureSource(s, "camera", size, max_pixels=max_pixels)
    p = Path(s).expanduser()
    if p.is_dir():
        return ImageFolderSource(image_files(p), str(p), on_skip, max_pixels)
    if any(ch in s for ch in "*?["):
        files = sorted((Path(f) for f in glob.glob(str(p)) if Path(f).suffix.lower() in IMAGE_EXTENSIONS),
                       key=_natural_key)
        if not files:
            raise SourceError(f"{s}: the pattern matches no images; {list_sources()}")
        return ImageFolderSource(files, s, on_skip, max_pixels)
    if p.is_file():
        if p.suffix.lower() in IMAGE_EXTENSIONS:
            return ImageFolderSource([p], str(p), on_skip, max_pixels)
        if not os.access(p, os.R_OK):
            raise SourceError(f"{p}: not readable (permissions); {list_sources()}")
        return VideoCaptureSource(str(p), "file", max_pixels=max_pixels)
    raise SourceError(f"{s}: no such file, folder or camera; {list_sources()}")

