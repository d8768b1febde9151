"""The package map holds: `edgeclf.edge` is only what a Pi runs, and the core never imports upward."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# What a Pi has: numpy, OpenCV, an interpreter, the standard library and edgeclf's own core and edge.
EDGE_FORBIDDEN = ("tensorflow", "keras", "matplotlib", "rich", "typer", "mediapipe",
                  "edgeclf.train", "edgeclf.convert", "edgeclf.bench", "edgeclf.cli")
# The core (edgeclf/*.py) is shared by every part, so it imports none of them.
CORE_FORBIDDEN = ("tensorflow", "keras", "matplotlib", "mediapipe",
                  "edgeclf.train", "edgeclf.convert", "edgeclf.bench", "edgeclf.edge", "edgeclf.cli")
# Strings naming modules (importlib.import_module("tensorflow")) are how edge/runtime.py offers tf.lite as
# the last fallback interpreter on a desktop; that one dynamic import is the documented exception.
DYNAMIC_ALLOWED = {("runtime.py", "tensorflow")}


def _imports(path: Path) -> list[tuple[int, str]]:
    """Every module a file imports, at any depth (function-level imports count too), made absolute."""
    pkg = {"edge": "edgeclf.edge", "bench": "edgeclf.bench", "edgeclf": "edgeclf"}[path.parent.name]
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg.split(".")[: len(pkg.split(".")) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            found += [(node.lineno, mod)] + [(node.lineno, f"{mod}.{a.name}") for a in node.names]
        elif (isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) == "import_module"
              and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            if (path.name, node.args[0].value) not in DYNAMIC_ALLOWED:
                found.append((node.lineno, node.args[0].value))
    return found


ENTRY_POINTS = ("__main__.py", "demo.py")  # `python -m edgeclf` and the demo drive every part on purpose


def _violations(folder: Path, forbidden: tuple[str, ...]) -> list[str]:
    bad = []
    for f in sorted(p for p in folder.glob("*.py") if p.name not in ENTRY_POINTS):
        for line, mod in _imports(f):
            if any(mod == x or mod.startswith(x + ".") for x in forbidden):
                bad.append(f"{folder.name}/{f.name}:{line} imports {mod}")
    return bad


def test_edge_imports_only_what_a_pi_runs() -> None:
    assert _violations(ROOT / "edge", EDGE_FORBIDDEN) == []


def test_core_imports_no_part() -> None:
    assert _violations(ROOT / "edgeclf", CORE_FORBIDDEN) == []


@pytest.mark.parametrize("planted", ["import keras", "from edgeclf.train import run", "from ..bench import run",
                                     "    import matplotlib.pyplot as plt"])
def test_the_boundary_check_catches_a_planted_import(tmp_path: Path, planted: str) -> None:
    edge = tmp_path / "edge"
    edge.mkdir()
    body = planted if not planted.startswith(" ") else "def f():\n" + planted
    (edge / "x.py").write_text(body + "\n")
    assert len(_violations(edge, EDGE_FORBIDDEN)) >= 1


def test_bench_lives_outside_edge() -> None:
    assert not list((ROOT / "edge").glob("bench*.py"))
    assert (ROOT / "bench" / "run.py").is_file()
