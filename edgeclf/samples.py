"""Sample frames a bundle carries for its own self-test, with the outputs it must give on them.

`edgeclf convert` writes a few small images into `<bundle>/samples/` and lists them in the manifest
(`samples.items`: file, sha256, the probabilities the edge pipeline gave on that image at conversion;
`samples.tolerance`: the largest difference a runtime may show). `edgeclf camera` runs them before a new
bundle replaces the running one (`edgeclf.edge.reload`): a model that loads but answers differently (a
damaged copy whose manifest was regenerated, a runtime that computes otherwise) is refused before it
classifies a frame. Bundles made before samples existed carry none; they still load, without this test.

Standard library only, like `edgeclf.bundle`.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from .errors import BundleError
from .sha256 import sha256

SAMPLES_DIR = "samples"
DEFAULT_TOLERANCE = 0.05  # probability; one int8 output step is 1/256, runtimes differ by a step or two
MAX_SAMPLES = 16
MAX_SAMPLE_BYTES = 2 * 1024**2
_FILE = re.compile(r"^samples/[A-Za-z0-9_-]{1,64}\.png$")  # inside the bundle, no way out of it


@dataclass(frozen=True)
class Sample:
    file: str  # relative to the bundle folder: samples/<name>.png
    sha256: str
    probs: tuple[float, ...]  # one per label, as `Classifier.__call__` returns them


@dataclass(frozen=True)
class SampleSet:
    items: tuple[Sample, ...]
    tolerance: float = DEFAULT_TOLERANCE

    def to_dict(self) -> dict[str, Any]:
        return {"tolerance": self.tolerance,
                "items": [{"file": s.file, "sha256": s.sha256, "probs": list(s.probs)} for s in self.items]}

    @classmethod
    def from_dict(cls, d: Any, where: str, n_labels: int) -> "SampleSet":
        if not isinstance(d, Mapping) or not isinstance(d.get("items"), list):
            raise BundleError(f"{where}: expected an object with a list 'items'")
        tol = d.get("tolerance", DEFAULT_TOLERANCE)
        if isinstance(tol, bool) or not isinstance(tol, (int, float)) or not 0 < tol <= 1:
            raise BundleError(f"{where}.tolerance: expected a probability in (0, 1], got {tol!r}")
        if len(d["items"]) > MAX_SAMPLES:
            raise BundleError(f"{where}.items: {len(d['items'])} samples, at most {MAX_SAMPLES}")
        items = []
        for i, s in enumerate(d["items"]):
            w = f"{where}.items[{i}]"
            if not isinstance(s, Mapping):
                raise BundleError(f"{w}: expected an object")
            f, sha, probs = s.get("file"), s.get("sha256"), s.get("probs")
            if not isinstance(f, str) or not _FILE.match(f):
                raise BundleError(f"{w}.file: expected samples/<name>.png, got {f!r}")
            if not isinstance(sha, str) or not re.fullmatch(r"[0-9a-f]{64}", sha):
                raise BundleError(f"{w}.sha256: expected 64 lowercase hex digits")
            if (not isinstance(probs, list) or len(probs) != n_labels
                    or not all(isinstance(p, (int, float)) and not isinstance(p, bool) and math.isfinite(p)
                               for p in probs)):
                raise BundleError(f"{w}.probs: expected {n_labels} finite numbers, one per label")
            items.append(Sample(f, sha, tuple(float(p) for p in probs)))
        return cls(tuple(items), float(tol))


def sample_bytes(bundle_dir: str | os.PathLike[str], sample: Sample) -> bytes:
    """The sample's file, checked against its sha256 (a regular file inside the bundle, size-capped)."""
    from .bundle import read_regular_file

    path = Path(bundle_dir) / sample.file
    try:
        data = read_regular_file(path, MAX_SAMPLE_BYTES)
    except FileNotFoundError:
        raise BundleError(f"{path}: missing; the manifest lists it as a self-test sample; re-copy the whole "
                          "bundle folder") from None
    if sha256(data).hexdigest() != sample.sha256:
        raise BundleError(f"{path}: sha256 does not match the manifest's; the bundle was changed or damaged; "
                          "re-copy it or re-convert")
    return data
