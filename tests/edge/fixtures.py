"""Test bundles for the edge tests, built once per test session (or taken from $EDGECLF_TFL_FIXTURES).

In the main venv the bundles are made by `python -m tests.make_bundles` in a child process (TensorFlow
stays out of the test process); under pytest-xdist the workers share one build behind a file lock. In the
tflite-runtime venv (no TensorFlow) scripts/test.sh builds them first with the main venv and points
$EDGECLF_TFL_FIXTURES at them.
"""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
ENV = "EDGECLF_TFL_FIXTURES"


@dataclass(frozen=True)
class Bundles:
    root: Path
    index: dict[str, Any]

    @property
    def names(self) -> list[str]:
        return sorted(self.index["bundles"])

    @property
    def images(self) -> Path:
        return self.root / "images"

    @property
    def expected(self) -> dict[str, dict[str, list[float]]]:
        return json.loads((self.images / "expected.json").read_text())

    def path(self, name: str) -> Path:
        """The bundle folder; skips the test when its manifest says the installed runtime cannot load it."""
        from edgeclf.bundle import read_manifest
        from edgeclf.edge.runtime import find_runtime, manifest_key

        p = self.root / name
        key = manifest_key(find_runtime())
        verdict = read_manifest(p).runtimes.get(key)
        if verdict is not None and verdict.loads is False:
            pytest.skip(f"{name}: the manifest says {key} cannot load it ({verdict.why})")
        return p


def _complete(root: Path) -> bool:
    return (root / "index.json").is_file()


def _build(root: Path) -> None:
    root.mkdir(parents=True, exist_ok=True)
    with open(root.parent / f".{root.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one xdist worker builds, the others wait and reuse
        if _complete(root):
            return
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(REPO)}
        out = subprocess.run([sys.executable, "-m", "tests.make_bundles", str(root)], cwd=REPO, env=env,
                             capture_output=True, text=True, timeout=600)
        if out.returncode != 0:
            pytest.fail(f"tests.make_bundles failed:\n{out.stderr[-3000:]}")


def get_bundles(tmp_path_factory: pytest.TempPathFactory) -> Bundles:
    env = os.environ.get(ENV)
    if env and _complete(Path(env)):
        root = Path(env)
    else:
        import importlib.util

        if importlib.util.find_spec("tensorflow") is None:
            pytest.fail(f"no TensorFlow here to build the test bundles and ${ENV} holds none; run "
                        f"`.venv/bin/python -m tests.make_bundles DIR` and set {ENV}=DIR")
        base = tmp_path_factory.getbasetemp()
        root = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "edge-bundles"
        if not _complete(root):
            _build(root)
    return Bundles(root, json.loads((root / "index.json").read_text()))
