"""The edge path (camera, classify, info) never imports TensorFlow, Keras or matplotlib.

The main venv has TensorFlow installed, so "not imported" is checked in a fresh process after the command ran
for real: a classify and a camera run on a real bundle (tests/edge/fixtures.py) through the interpreter, with
the modules that did the work listed beside the ones that must stay out.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from edgeclf.bundle import write_bundle

from .edge.fixtures import Bundles, get_bundles
from .test_bundle import FAKE_TFLITE, make_manifest

RUN_AND_LIST_IMPORTS = r"""
import sys
from typer.testing import CliRunner
from edgeclf.cli import app
import edgeclf.edge.preprocess, edgeclf.edge.runtime, edgeclf.imageio, edgeclf.bundle
r = CliRunner().invoke(app, sys.argv[1:])
heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras', 'matplotlib'))
print('HEAVY', heavy)
worked = ('edgeclf.edge.model', 'ai_edge_litert', 'tflite_runtime', 'cv2')
print('LOADED', sorted(m for m in sys.modules if m in worked))
print('EXIT', r.exit_code)
print(r.output)
"""


def _run(*args: str, env: dict[str, str] | None = None) -> str:
    out = subprocess.run([sys.executable, "-c", RUN_AND_LIST_IMPORTS, *args], capture_output=True, text=True,
                         timeout=120, env=env)
    assert out.returncode == 0, f"exit {out.returncode}\nstdout: {out.stdout}\nstderr: {out.stderr}"
    return out.stdout + "\nSTDERR " + out.stderr  # the command's own error line, when an assertion below fails


@pytest.fixture(scope="module")
def real_bundles(tmp_path_factory: pytest.TempPathFactory) -> Bundles:
    return get_bundles(tmp_path_factory)


def test_info_imports_no_tensorflow(tmp_path: Path) -> None:
    write_bundle(tmp_path / "b", FAKE_TFLITE, make_manifest())
    out = _run("info", str(tmp_path / "b"))
    assert "HEAVY []" in out and "EXIT 0" in out and "humans" in out


def test_edge_error_paths_and_help_import_no_tensorflow(tmp_path: Path) -> None:
    """Only the start-up and error paths (an empty folder is no bundle); the real runs are the test below."""
    for cmd, code in ((["classify", str(tmp_path), str(tmp_path)], 1), (["camera", str(tmp_path)], 1),
                      (["--help"], 0)):
        out = _run(*cmd)
        assert "HEAVY []" in out and f"EXIT {code}" in out, out


def test_classify_and_camera_run_for_real_without_tensorflow(real_bundles: Bundles, tmp_path: Path) -> None:
    """The real commands on a real bundle: a verified load, the child probe, the interpreter, OpenCV."""
    import os

    env = {**os.environ, "EDGECLF_CACHE": str(tmp_path / "cache")}
    bundle = str(real_bundles.path("rgb32-int8"))
    out = _run("classify", bundle, str(real_bundles.images / "color-red0.png"), "--json", env=env)
    assert "HEAVY []" in out and "EXIT 0" in out, out
    # it really classified: the model module, an interpreter and OpenCV are loaded, and the child load probe ran
    loaded = out.split("LOADED ", 1)[1].splitlines()[0]
    assert "'edgeclf.edge.model'" in loaded and "'cv2'" in loaded, loaded
    assert "'ai_edge_litert'" in loaded or "'tflite_runtime'" in loaded, loaded
    assert list((tmp_path / "cache").rglob("*.ok")), "the child load probe did not run"
    row = json.loads(next(line for line in out.splitlines() if line.startswith("{")))
    assert row["label"] == "red"
    events = tmp_path / "events.jsonl"
    out = _run("camera", bundle, "--source", str(real_bundles.images), "--events", str(events), env=env)
    assert "HEAVY []" in out and "EXIT 0" in out, out  # the real cause (the error line) is in `out`
    last = json.loads(events.read_text().splitlines()[-1])
    assert last["event"] == "summary" and last["frames"] == len(list(real_bundles.images.glob("*.png"))) + 1
