"""--threads and --top-k ranges (issue #12, item 12): checked before anything loads, one line, exit 2.
`--threads 100000` used to segfault classify and camera in the interpreter's thread pool."""

from __future__ import annotations

import os

import pytest

from .conftest import error_lines, run_cli

pytestmark = pytest.mark.tflite_runtime


@pytest.mark.parametrize("flag,value", [("--threads", "100000"), ("--threads", "0"), ("--threads", "-3"),
                                        ("--top-k", "0"), ("--top-k", "-2")])
@pytest.mark.parametrize("command", ["classify", "camera"])
def test_out_of_range_is_one_line_before_loading(bundles, command: str, flag: str, value: str) -> None:
    bundle = str(bundles.path("b32-float32"))
    args = [command, bundle, str(bundles.images / "gray.png")] if command == "classify" else \
        [command, bundle, "--source", str(bundles.images), "--max-frames", "2"]
    out = run_cli(*args, flag, value, timeout=60)
    lines = error_lines(out.stderr)
    assert out.returncode == 2 and len(lines) == 1 and lines[0].startswith(f"error: {flag} {value}"), out.stderr
    assert "expected 1" in lines[0] and "XNNPACK" not in out.stderr  # refused before an interpreter existed


def test_the_cap_itself_is_accepted(bundles) -> None:
    cap = 4 * (os.cpu_count() or 1)
    out = run_cli("classify", "--threads", str(cap), str(bundles.path("b32-float32")), str(bundles.images / "gray.png"))
    assert out.returncode == 0, out.stderr


def test_bench_refuses_a_huge_thread_count(bundles, tmp_path) -> None:
    out = run_cli("bench", str(bundles.path("b32-float32")), "--threads", "100000", "--out", str(tmp_path))
    assert out.returncode == 2 and "--threads 100000: expected 1 to" in out.stderr, out.stderr
