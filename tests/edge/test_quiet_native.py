"""Noise (issue #12): without -v, `classify`, `camera` and `info --check` print only edgeclf's own lines;
the interpreter's "INFO: Created TensorFlow Lite XNNPACK delegate" banner (C++, fd 2) is held back."""

from __future__ import annotations

import pytest

from .conftest import run_cli

pytestmark = pytest.mark.tflite_runtime


@pytest.mark.parametrize("command", ["classify", "camera", "info --check"])
def test_no_interpreter_banner_without_verbose(bundles, command: str) -> None:
    bundle = str(bundles.path("b32-float32"))
    extra = {"classify": [str(bundles.images / "gray.png")], "camera": ["--source", str(bundles.images)],
             "info --check": []}[command]
    out = run_cli(*command.split(), bundle, *extra)
    assert out.returncode == 0, out.stderr
    assert "XNNPACK" not in out.stderr and "INFO: " not in out.stderr, out.stderr


def test_verbose_still_shows_native_output(bundles) -> None:
    out = run_cli("-vv", "classify", str(bundles.path("b32-float32")), str(bundles.images / "gray.png"))
    assert out.returncode == 0, out.stderr
    assert "loaded b32-float32" in out.stderr
