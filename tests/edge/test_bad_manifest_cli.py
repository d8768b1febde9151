"""Malformed manifests through the real CLI (issue #12, item 11): `classify` and `info` on a real bundle
whose manifest has a wrong type or range give one error line and exit 1, never a traceback and never a
model that answers the same label for every image."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from .conftest import error_lines, run_cli

pytestmark = pytest.mark.tflite_runtime

CASES = [("preprocess", "height", 32.0), ("preprocess", "scale", "abc"), ("preprocess", "scale", 0),
         ("preprocess", "scale", float("nan")), ("preprocess", "offset", float("inf")), (None, "model", 5),
         (None, "runtimes", []), (None, "labels", "ab")]


@pytest.mark.parametrize("parent,key,value", CASES, ids=[f"{k}={v!r}" for _, k, v in CASES])
def test_classify_refuses_a_malformed_manifest_in_one_line(bundles, tmp_path: Path, parent, key, value) -> None:
    b = tmp_path / "b"
    shutil.copytree(bundles.path("b32-float32"), b)
    m = json.loads((b / "manifest.json").read_text())
    (m[parent] if parent else m)[key] = value
    (b / "manifest.json").write_text(json.dumps(m))
    for args in (("classify", str(b), str(bundles.images / "gray.png")), ("info", str(b))):
        out = run_cli(*args)
        lines = error_lines(out.stderr)
        assert out.returncode == 1 and len(lines) == 1 and lines[0].startswith("error: "), out.stderr
        assert key in lines[0] and "Traceback" not in out.stderr
