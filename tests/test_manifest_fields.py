"""Manifest validation (issue #12, item 11): every field's type and range is checked when a bundle is read,
so a malformed manifest is one BundleError line naming the field, never a traceback or a model that
answers the same label for every image."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from edgeclf.bundle import MANIFEST_FILE, read_manifest, write_bundle
from edgeclf.errors import BundleError

from .test_bundle import FAKE_TFLITE, make_manifest


def _with(tmp_path: Path, edit) -> Path:
    b = tmp_path / "b"
    write_bundle(b, FAKE_TFLITE, make_manifest())
    f = b / MANIFEST_FILE
    d = json.loads(f.read_text())
    edit(d)
    f.write_text(json.dumps(d))  # NaN/Infinity are written as JSON's non-standard literals, as a tool might
    return b


def _set(path: str, value: Any):
    def edit(d: dict) -> None:
        *parents, last = path.split(".")
        for p in parents:
            d = d[p]
        d[last] = value
    return edit


CASES = [
    ("preprocess.height", 150.0, r"preprocess\.height: expected a whole number, got float 150\.0"),
    ("preprocess.height", True, "preprocess.height: expected a whole number"),
    ("preprocess.width", 0, r"preprocess\.width: 0 is out of range"),
    ("preprocess.width", 10**9, r"preprocess\.width: 1000000000 is out of range"),
    ("preprocess.scale", "abc", "preprocess.scale: expected a number, got str 'abc'"),
    ("preprocess.scale", 0, "preprocess.scale: 0 would make every input the same"),
    ("preprocess.scale", float("nan"), "preprocess.scale: nan is not a finite number"),
    ("preprocess.offset", float("inf"), "preprocess.offset: inf is not a finite number"),
    ("preprocess.crop", 7, "preprocess.crop: expected a string"),
    ("preprocess", [], "preprocess: expected a JSON object, got list"),
    ("model", 5, "model: expected a JSON object, got int 5"),
    ("model.sha256", 12, "model.sha256: expected a string"),
    ("model.sha256", "zz", "model.sha256: expected 64 lowercase hex digits"),
    ("model.size_bytes", "12", "model.size_bytes: expected a whole number"),
    ("model.size_bytes", -1, r"model.size_bytes: -1 is out of range"),
    ("runtimes", [], "runtimes: expected a JSON object, got list"),
    ("runtimes", {"ai-edge-litert": "yes"}, "runtimes.ai-edge-litert: expected a JSON object"),
    ("runtimes", {"ai-edge-litert": {"loads": "no"}}, "runtimes.ai-edge-litert.loads: expected true, false or null"),
    ("source", "x", "source: expected a JSON object"),
    ("metrics", [1], "metrics: expected a JSON object"),
    ("labels", "ab", "labels: expected a list of label names, got str"),
    ("labels", ["horses", 3], r"labels\[1\]: expected a string, got int"),
    ("task", ["binary"], "task: expected a string"),
    ("positive_label", 1, "positive_label: expected a string"),
    ("input.dtype", "int4", "input.dtype: 'int4' is not supported"),
    ("input.scale", "0.1", "input.scale: expected a number"),
    ("input.scale", 0, "input.scale: 0.0 must be positive"),
    ("output.zero_point", 300, r"output\.zero_point: 300 is out of range; expected 0\.\.255"),
    ("output.zero_point", 1.5, "output.zero_point: expected a whole number"),
    ("created", 5, "created: expected a string"),
]


@pytest.mark.parametrize("field,value,says", CASES, ids=[f"{c[0]}={c[1]!r}" for c in CASES])
def test_each_field_is_checked(tmp_path: Path, field: str, value: Any, says: str) -> None:
    b = _with(tmp_path, _set(field, value))
    with pytest.raises(BundleError, match=says) as e:
        read_manifest(b)
    assert "\n" not in str(e.value) and "edgeclf convert" in str(e.value)


@pytest.mark.parametrize("depth", [100_000])
def test_deeply_nested_json_is_one_line(tmp_path: Path, depth: int) -> None:
    b = tmp_path / "b"
    write_bundle(b, FAKE_TFLITE, make_manifest())
    (b / MANIFEST_FILE).write_text('{"schema": ' + "[" * depth + "]" * depth + "}")
    with pytest.raises(BundleError, match="nested too deeply"):
        read_manifest(b)


def test_a_good_manifest_still_reads(tmp_path: Path) -> None:
    b = _with(tmp_path, lambda d: None)
    assert read_manifest(b).preprocess.height == 150
