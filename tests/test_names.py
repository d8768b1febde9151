"""Same name, same thing: a public function or class name is defined in one module of edgeclf only.

`default_threads` was an int in edge/runtime.py and a tuple in the bench; `Captured` was both a camera
frame and the converter's captured native log; "probe" named the edge's child-process first load, the
bench's memory/start-up measurement and a test script. Each now has its own name.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PARTS = ("edgeclf", "edge", "bench", "convert", "train", "evaluate")
# Deliberately the same thing under one name in two places:
SAME_THING = {
    "main": "each module's `python -m` entry point",
    "train": "the `edgeclf train` command and the library call it wraps",
    "load_keras": "convert.export.load_keras is train.modelio.load_keras with the converter's native log quiet",
    "write_outputs": "each command's report module writing that command's files (bench/, evaluate/)",
    # Left for the lead: edgeclf/metrics.decide (rows of probabilities) and bench.measure.decide (one row)
    # hold one rule; the bench's goes when edgeclf/metrics.py is committed.
    "decide": "the sigmoid >= 0.5 / argmax rule, to be merged into edgeclf.metrics",
}


def _definitions() -> dict[str, list[str]]:
    found: dict[str, list[str]] = defaultdict(list)
    for part in PARTS:
        for f in sorted((ROOT / part).rglob("*.py")):
            for node in ast.parse(f.read_text("utf-8")).body:
                if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and not node.name.startswith("_"):
                    found[node.name].append(f.relative_to(ROOT).as_posix())
    return found


def test_no_public_name_means_two_things() -> None:
    twice = {name: files for name, files in _definitions().items() if len(files) > 1 and name not in SAME_THING}
    assert twice == {}


def test_the_renamed_ones() -> None:
    defs = _definitions()
    assert defs["default_threads"] == ["edge/runtime.py"]  # one int: the threads an interpreter gets
    assert defs["thread_counts"] == ["bench/measure.py"]  # the counts bench measures: (1, all cores)
    assert defs["Captured"] == ["edge/capture.py"]  # a camera frame
    assert defs["NativeOutput"] == ["edgeclf/native_output.py"]  # what TensorFlow printed while quiet
    assert defs["probe_model"] == ["edge/runtime.py"]  # "probe": the child-process first load, only that
    assert defs["measure_footprint"] == ["bench/footprint.py"] and "probe" not in defs
    assert not (ROOT / "bench" / "probe.py").exists()
