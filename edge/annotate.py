"""Draw the answer on a copy of the frame (label, score, smoothed score, FPS, latency) for display/save/serve."""

from __future__ import annotations

import cv2
import numpy as np


class Annotator:
    """Copies each frame into one reused canvas and draws a status bar on it."""

    def __init__(self) -> None:
        self.canvas: np.ndarray | None = None

    def __call__(self, frame: np.ndarray, label: str, score: float, smoothed: float, fps: float,
                 latency_ms: float) -> np.ndarray:
        if self.canvas is None or self.canvas.shape != frame.shape:
            self.canvas = np.empty_like(frame)
        np.copyto(self.canvas, frame)
        return draw_status(self.canvas, label, score, smoothed, fps, latency_ms)


def draw_status(img: np.ndarray, label: str, score: float, smoothed: float, fps: float,
                latency_ms: float) -> np.ndarray:
    """Draw the status bar on `img` itself (a copy the caller owns) and return it."""
    h, w = img.shape[:2]
    scale = max(0.4, min(w, h) / 640.0)
    thick = max(1, int(round(2 * scale)))
    bar = int(34 * scale)
    img[:bar] //= 3  # darken the top band so the text reads on any picture
    text = f"{label} {score:.2f} (avg {smoothed:.2f})"
    cv2.putText(img, text, (int(8 * scale), int(24 * scale)), cv2.FONT_HERSHEY_SIMPLEX, 0.7 * scale,
                (255, 255, 255), thick, cv2.LINE_AA)
    info = f"{fps:4.1f} FPS  {latency_ms:5.1f} ms"
    (tw, _), _ = cv2.getTextSize(info, cv2.FONT_HERSHEY_SIMPLEX, 0.55 * scale, thick)
    cv2.putText(img, info, (w - tw - int(8 * scale), int(24 * scale)), cv2.FONT_HERSHEY_SIMPLEX, 0.55 * scale,
                (200, 255, 200), thick, cv2.LINE_AA)
    return img
