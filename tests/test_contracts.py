"""The manifest's source, metrics and runtimes are typed (edgeclf.contracts) and the JSON on disk is unchanged."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgeclf.bundle import Manifest
from edgeclf.contracts import BundleMetrics, Interval, RuntimeVerdict, Source
from edgeclf.errors import BundleError

# A manifest as `edgeclf convert` wrote it before the contracts were typed (fields abridged to the typed parts).
WRITTEN = {
    "schema": "edgeclf.bundle", "schema_version": 1, "labels": ["horses", "humans"], "task": "binary",
    "positive_label": "humans",
    "preprocess": {"height": 32, "width": 32, "channels": 3, "color": "RGB", "scale": 0.00392156862745098,
                   "offset": 0.0, "resize": "bilinear", "crop": "center"},
    "input": {"dtype": "uint8", "scale": 0.0039, "zero_point": 0},
    "output": {"dtype": "uint8", "scale": 0.0039, "zero_point": 0},
    "model": {"file": "model.tflite", "sha256": "a" * 64, "size_bytes": 1234},
    "source": {"run": "/runs/train-1", "arch": "edge", "size": 32, "quantization": "int8", "io_dtype": "uint8"},
    "metrics": {"accuracy": 0.95, "keras_accuracy": 0.96, "delta_pp": -1.0, "agreement": 0.99,
                "mean_abs_diff": 0.01, "n": 100, "status": "ok",
                "test": {"accuracy": 0.9, "low": 0.8, "high": 0.97, "n_images": 100, "n_groups": 12, "enough": True,
                         "note": ""},
                "measured_on": "test"},
    "runtimes": {"ai-edge-litert": {"loads": True, "why": "loaded and invoked here", "source": "load+invoke"},
                 "tflite-runtime-2.14": {"loads": False, "why": "needs FULLY_CONNECTED v12",
                                         "source": "op-version table"}},
    "created": "2026-12-01T00:00:00+00:00", "edgeclf_version": "0.2.0",
}


def _fixture_manifests() -> list[Path]:
    import os

    root = os.environ.get("EDGECLF_TFL_FIXTURES")
    return sorted(Path(root).glob("*/manifest.json")) if root else []


def test_typed_fields_read_and_write_the_same_json() -> None:
    m = Manifest.from_dict(WRITTEN)
    assert m.source == Source("/runs/train-1", "edge", 32, "int8", "uint8")
    assert m.metrics.agreement == 0.99 and m.metrics.n == 100 and isinstance(m.metrics.test, Interval)
    assert m.metrics.test.n_groups == 12
    assert m.runtimes["tflite-runtime-2.14"] == RuntimeVerdict(False, "needs FULLY_CONNECTED v12", "op-version table")
    assert _typed_parts(m.to_dict()) == _typed_parts(WRITTEN)
    for path in _fixture_manifests():  # bundles written by tests/make_bundles: the same JSON back
        raw = json.loads(path.read_text())
        assert _typed_parts(Manifest.from_dict(raw).to_dict()) == _typed_parts(raw), path


def _typed_parts(d: dict) -> dict:
    return {k: d[k] for k in ("source", "metrics", "runtimes")}


def test_absent_fields_stay_absent() -> None:
    d = {**WRITTEN, "source": {"run": "x"}, "metrics": {}, "runtimes": {}}
    m = Manifest.from_dict(d)
    assert m.source.quantization is None and m.metrics == BundleMetrics()
    assert m.to_dict()["source"] == {"run": "x"} and m.to_dict()["metrics"] == {}


@pytest.mark.parametrize("part, value, named", [
    ("source", {"size": "150"}, "source.size"),
    ("source", {"quantization": 8}, "source.quantization"),
    ("metrics", {"agreement": 99.0}, "metrics.agreement"),
    ("metrics", {"accuracy": "high"}, "metrics.accuracy"),
    ("metrics", {"n": 1.5}, "metrics.n"),
    ("metrics", {"test": {"accuracy": 0.9}}, "metrics.test"),
    ("runtimes", {"ai-edge-litert": {"loads": "yes"}}, "runtimes.ai-edge-litert.loads"),
    ("runtimes", {"ai-edge-litert": []}, "runtimes.ai-edge-litert"),
])
def test_a_malformed_typed_field_is_one_line_naming_it(part: str, value: object, named: str) -> None:
    with pytest.raises(BundleError) as e:
        Manifest.from_dict({**WRITTEN, part: value}, "b/manifest.json")
    msg = str(e.value)
    assert named in msg and "\n" not in msg and "edgeclf convert" in msg, msg


def test_a_manifest_is_not_built_from_loose_dicts() -> None:
    m = Manifest.from_dict(WRITTEN)
    with pytest.raises(TypeError, match="edgeclf.contracts"):
        Manifest(**{**m.__dict__, "source": {"run": "x"}})
