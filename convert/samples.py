"""Self-test samples for each bundle `convert` writes (`edgeclf.samples`): a few held-out images, made
small and stored as PNG, with the probabilities the edge pipeline (`edgeclf.edge.model.Classifier`, the
code `edgeclf camera` runs) gives on them for this very model and manifest."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Sequence

from edgeclf.bundle import Bundle, Manifest, sha256_bytes, write_bundle
from edgeclf.samples import SAMPLES_DIR, Sample, SampleSet

N_SAMPLES = 4
SAMPLE_SIDE = 96  # longest side of a stored sample, pixels: a few KB each


def pick(items: Sequence[tuple[Path, int]], n: int = N_SAMPLES) -> list[Path]:
    """Up to `n` images, the classes taken in turn (the first images of each class, in order)."""
    by_class: dict[int, list[Path]] = {}
    for path, label in items:
        by_class.setdefault(int(label), []).append(Path(path))
    out: list[Path] = []
    while len(out) < n and any(by_class.values()):
        for label in sorted(by_class):
            if by_class[label] and len(out) < n:
                out.append(by_class[label].pop(0))
    return out


def _png(path: Path) -> bytes:
    import cv2

    from edgeclf.imageio import read_bgr

    img = read_bgr(path)
    h, w = img.shape[:2]
    scale = SAMPLE_SIDE / max(h, w)
    if scale < 1:
        img = cv2.resize(img, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    ok, data = cv2.imencode(".png", img)
    assert ok
    return data.tobytes()


def expected_probs(model_bytes: bytes, manifest: Manifest, pngs: Sequence[bytes]) -> list[tuple[float, ...]]:
    """What the edge pipeline answers on each PNG with this model (one interpreter thread, no probe)."""
    from edgeclf.edge.model import Classifier
    from edgeclf.edge.runtime import find_runtime
    from edgeclf.imageio import decode_bgr

    clf = Classifier(Bundle(Path("."), manifest, model_bytes), find_runtime(None), threads=1, probe=False, quiet=True)
    return [tuple(round(float(p), 6) for p in clf(decode_bgr(png, "sample"))) for png in pngs]


def write_with_samples(items: Sequence[tuple[Path, int]], path: str | os.PathLike[str], model_bytes: bytes,
                       manifest: Manifest) -> Manifest:
    """`write_bundle` with self-test samples taken from `items` (the held-out images)."""
    pngs = [_png(p) for p in pick(items)]
    probs = expected_probs(model_bytes, manifest, pngs)
    files = {f"{SAMPLES_DIR}/{i}.png": data for i, data in enumerate(pngs)}
    samples = SampleSet(tuple(Sample(name, sha256_bytes(data), p) for (name, data), p in zip(files.items(), probs)))
    return write_bundle(path, model_bytes, replace(manifest, samples=samples), files)

