"""Camera-like frames from still images: what a Pi camera pointed at the subject would deliver.

Each frame is a 4:3 BGR uint8 image (as OpenCV delivers): the whole source image (the subject) scaled to
`min_fill`..`max_fill` of the frame's short side, anywhere in the frame, on a background (a flat colour,
sensor-like noise, or a piece of another image of the set); then a gain and gamma change, at times a blur,
sensor noise and JPEG artefacts. Seeded: the same seed and images give the same frames, byte for byte.

numpy and OpenCV only, so it runs where `edgeclf eval` runs (a Pi included). Training draws its own
augmentation in TensorFlow (`edgeclf.train.augment`), independently: this is a test, not the training
distribution measuring itself.
"""

from __future__ import annotations

import collections
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from .errors import UsageError

BACKGROUNDS = ("flat", "noise", "image")


@dataclass(frozen=True)
class CameraSim:
    """How the frames are drawn. Defaults: a 640x480 frame, the subject at 45-100 % of its height."""

    width: int = 640
    height: int = 480
    min_fill: float = 0.45
    max_fill: float = 1.0
    gain: float = 0.4  # brightness factor drawn from [1 - gain, 1 + gain]
    gamma: float = 0.4  # exponent drawn from [1/(1+gamma), 1+gamma]
    noise: float = 8.0  # sensor noise sigma drawn from [1, noise] (8-bit levels)
    p_blur: float = 0.4
    jpeg: tuple[int, int] = (40, 90)  # quality range
    seed: int = 0

    def __post_init__(self) -> None:
        if not (16 <= self.width <= 4096 and 16 <= self.height <= 4096):
            raise UsageError(f"camera-sim frame {self.width}x{self.height}: expected 16..4096 pixels a side")
        if not 0.05 <= self.min_fill <= self.max_fill <= 1.0:
            raise UsageError(f"camera-sim fill {self.min_fill}..{self.max_fill}: expected 0.05 <= min <= max <= 1")

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def _background(rng: np.random.Generator, sim: CameraSim, others: Sequence[np.ndarray]) -> tuple[np.ndarray, str]:
    import cv2

    h, w = sim.height, sim.width
    kind = BACKGROUNDS[int(rng.integers(0, len(BACKGROUNDS) if others else 2))]
    colour = rng.integers(0, 256, size=3)
    bg = np.empty((h, w, 3), np.uint8)
    bg[:] = colour.astype(np.uint8)
    if kind == "noise":
        tex = rng.normal(0.0, rng.uniform(8, 40), size=(h // 8 + 1, w // 8 + 1, 3))
        tex = cv2.resize(tex.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
        bg = np.clip(bg.astype(np.float32) + tex, 0, 255).astype(np.uint8)
    elif kind == "image":
        src = others[int(rng.integers(0, len(others)))]
        sh, sw = src.shape[:2]
        side = int(rng.uniform(0.15, 0.3) * min(sh, sw))  # a piece of scenery from the top band (sky, hills),
        y, x = int(rng.integers(0, sh // 4 - side // 2 + 1)), int(rng.integers(0, sw - side + 1))  # not a subject
        bg = cv2.resize(np.ascontiguousarray(src[y:y + side, x:x + side]), (w, h), interpolation=cv2.INTER_LINEAR)
    return bg, kind


def make_frame(image_bgr: np.ndarray, rng: np.random.Generator, sim: CameraSim,
               others: Sequence[np.ndarray] = ()) -> np.ndarray:
    """One camera-like frame of `image_bgr` (its whole content is the subject)."""
    import cv2

    if image_bgr.ndim == 2:
        image_bgr = cv2.cvtColor(image_bgr, cv2.COLOR_GRAY2BGR)
    elif image_bgr.shape[2] == 4:
        image_bgr = cv2.cvtColor(image_bgr, cv2.COLOR_BGRA2BGR)
    frame, _ = _background(rng, sim, others)
    ih, iw = image_bgr.shape[:2]
    fill = rng.uniform(sim.min_fill, sim.max_fill)
    scale = min(fill * sim.height / ih, sim.width / iw)
    sh, sw = max(1, int(round(ih * scale))), max(1, int(round(iw * scale)))
    subject = cv2.resize(image_bgr, (sw, sh), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    y, x = int(rng.integers(0, sim.height - sh + 1)), int(rng.integers(0, sim.width - sw + 1))
    frame[y:y + sh, x:x + sw] = subject
    f = frame.astype(np.float32) / 255.0
    g = np.exp(rng.uniform(-1, 1) * np.log1p(sim.gamma))
    f = np.power(f, g) * rng.uniform(1 - sim.gain, 1 + sim.gain)
    if rng.uniform() < sim.p_blur:
        f = cv2.GaussianBlur(f, (0, 0), rng.uniform(0.6, 1.8))
    f = f * 255.0 + rng.normal(0.0, rng.uniform(1.0, sim.noise), size=f.shape)
    out = np.clip(f, 0, 255).astype(np.uint8)
    q = int(rng.integers(sim.jpeg[0], sim.jpeg[1] + 1))
    ok, enc = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, q])
    return cv2.imdecode(enc, cv2.IMREAD_COLOR) if ok else out


@dataclass(frozen=True)
class SimFrame:
    frame: np.ndarray  # BGR uint8, sim.height x sim.width
    label: int
    source: str  # the still image it was made from
    index: int


def frames(items: Sequence[tuple[str, int]], sim: CameraSim, per_image: int = 1,
           max_pixels: int | None = None, workers: int | None = None) -> Iterator[SimFrame]:
    """`per_image` frames of each (path, label) item, in item order; backgrounds borrow other items' images.

    Items are drawn by `workers` threads (default: the usable cores, at most 4; OpenCV and numpy's large
    operations release the GIL), a few items ahead of the consumer: the same frames, byte for byte, as one
    thread draws (each frame's generator is keyed by its index), with bounded memory."""
    from concurrent.futures import ThreadPoolExecutor

    from .imageio import DEFAULT_MAX_PIXELS, read_bgr

    if per_image < 1:
        raise UsageError(f"--frames-per-image {per_image}: expected 1 or more")
    cap = max_pixels or DEFAULT_MAX_PIXELS
    pool_rng = np.random.default_rng(sim.seed + 7919)
    pool_idx = sorted(pool_rng.choice(len(items), size=min(8, len(items)), replace=False).tolist()) if items else []
    pool = [read_bgr(items[i][0], cap) for i in pool_idx]

    def item_frames(n: int) -> list[SimFrame]:
        path, label = items[n]
        img = read_bgr(path, cap)
        others = [p for i, p in zip(pool_idx, pool) if i != n]
        ks = range(n * per_image, (n + 1) * per_image)
        return [SimFrame(make_frame(img, np.random.default_rng([sim.seed, k]), sim, others), label, str(path), k)
                for k in ks]

    from .cores import usable_cores

    workers = workers or min(4, usable_cores())
    if workers <= 1 or len(items) < 2:
        for n in range(len(items)):
            yield from item_frames(n)
        return
    with ThreadPoolExecutor(workers, thread_name_prefix="edgeclf-camsim") as ex:
        ahead = collections.deque(ex.submit(item_frames, n) for n in range(min(2 * workers, len(items))))
        nxt = len(ahead)
        while ahead:
            done = ahead.popleft().result()
            if nxt < len(items):
                ahead.append(ex.submit(item_frames, nxt))
                nxt += 1
            yield from done


def write_video(sim_frames: Sequence[SimFrame] | Iterator[SimFrame], path: str | os.PathLike[str],
                labels: Sequence[str], fps: float = 10.0) -> Path:
    """The frames as an MJPEG .avi (OpenCV writes and reads it everywhere, no codec licence) plus
    `<path>.labels.json` with the true label of each frame, for `edgeclf camera --source`."""
    import cv2

    from .atomic import atomic_path, write_json

    out = Path(path)
    truth: list[dict[str, object]] = []
    with atomic_path(out) as tmp:
        writer = None
        try:
            for f in sim_frames:
                if writer is None:
                    h, w = f.frame.shape[:2]
                    writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"MJPG"), fps, (w, h))
                    if not writer.isOpened():
                        raise UsageError(f"{out}: OpenCV cannot write an MJPEG video there; use a .avi path")
                writer.write(f.frame)
                truth.append({"frame": len(truth), "label": labels[f.label], "source": f.source})
        finally:
            if writer is not None:
                writer.release()
        if not truth:
            raise UsageError(f"{out}: no frames to write")
    write_json(Path(f"{out}.labels.json"), {"labels": list(labels), "frames": truth})
    return out


def read_video_frames(path: str | os.PathLike[str]) -> list[tuple[str, str]]:
    """(true label, source image) per frame, written beside a camera-sim video."""
    d = json.loads(Path(f"{path}.labels.json").read_text("utf-8"))
    return [(str(r["label"]), str(r["source"])) for r in d["frames"]]


def read_video_labels(path: str | os.PathLike[str]) -> list[str]:
    """The true label per frame written beside a camera-sim video."""
    return [label for label, _ in read_video_frames(path)]
