"""Generated non-class images: what the "unknown" threshold is fitted against besides the validation split.

No real images of other classes are used for fitting (those are kept for measuring, docs/unknown.md).
Six kinds, each `n_per_kind` images at the model's input size, already preprocessed as the model wants
them (pixels * scale + offset, the run's spec):

- noise: uniform random pixels;
- blurred noise: the same, Gaussian-blurred into blotches;
- flat colour: one random colour;
- gradient: a linear ramp between two random colours at a random angle (walls, sky, floors);
- shuffled patches: a training image cut into a 4x4 grid of tiles in random order (its textures and
  colours, none of its shapes);
- blurred image: a training image blurred until no shape is left.
"""

from __future__ import annotations

import numpy as np

from edgeclf.preprocess import PreprocessSpec

KINDS = ("noise", "blurred noise", "flat colour", "gradient", "shuffled patches", "blurred image")


def _blur(img: np.ndarray, sigma: float) -> np.ndarray:
    import cv2

    return cv2.GaussianBlur(img, (0, 0), sigmaX=sigma, sigmaY=sigma, borderType=cv2.BORDER_REFLECT)


def _shuffled(img: np.ndarray, rng: np.random.Generator, grid: int = 4) -> np.ndarray:
    h, w = img.shape[:2]
    th, tw = h // grid, w // grid
    tiles = [img[r * th:(r + 1) * th, c * tw:(c + 1) * tw] for r in range(grid) for c in range(grid)]
    order = rng.permutation(len(tiles))
    out = img.copy()
    for k, i in enumerate(order):
        r, c = divmod(k, grid)
        out[r * th:(r + 1) * th, c * tw:(c + 1) * tw] = tiles[i]
    return out


def generated_nonclass(spec: PreprocessSpec, train_x: np.ndarray, n_per_kind: int = 30,
                       seed: int = 0) -> tuple[np.ndarray, tuple[str, ...]]:
    """(images (N, H, W, 3) float32 preprocessed, the kind of each); `train_x`: preprocessed training images."""
    rng = np.random.default_rng(seed)
    h, w = spec.height, spec.width
    images: list[np.ndarray] = []
    kinds: list[str] = []

    def add(pixels: np.ndarray, kind: str) -> None:  # pixels: 0..255
        images.append((pixels.astype(np.float32) * spec.scale + spec.offset).astype(np.float32))
        kinds.append(kind)

    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    for _ in range(n_per_kind):
        noise = rng.uniform(0, 255, (h, w, 3)).astype(np.float32)
        add(noise, "noise")
        add(_blur(noise, max(h, w) / 20.0), "blurred noise")
        add(np.broadcast_to(rng.uniform(0, 255, 3).astype(np.float32), (h, w, 3)), "flat colour")
        angle = rng.uniform(0, 2 * np.pi)
        ramp = np.cos(angle) * xx / max(w - 1, 1) + np.sin(angle) * yy / max(h - 1, 1)
        ramp = (ramp - ramp.min()) / max(float(np.ptp(ramp)), 1e-6)
        a, b = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
        add(a + ramp[..., None] * (b - a), "gradient")
    if len(train_x):
        pixels = (np.asarray(train_x, np.float32) - spec.offset) / spec.scale  # back to 0..255
        for k in range(n_per_kind):
            img = pixels[k % len(pixels)]
            add(_shuffled(img, rng), "shuffled patches")
            add(_blur(img, max(h, w) / 10.0), "blurred image")
    return np.stack(images), tuple(kinds)
