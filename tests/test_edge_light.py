"""The edge path (camera, classify, info) never imports TensorFlow, Keras or matplotlib."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from edgeclf.bundle import write_bundle

from .edge.fixtures import Bundles, get_bundles
from .test_bundle import FAKE_TFLITE, make_manifest

PROBE = r"""
import sys
from typer.testing import CliRunner
from edgeclf.cli import app
import edgeclf.edge.preprocess, edgeclf.edge.runtime, edgeclf.imageio, edgeclf.bundle
r = CliRunner().invoke(app, sys.argv[1:])
heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras', 'matplotlib'))
print('HEAVY', heavy)
print('EXIT', r.exit_code)
print(r.output)
"""


def _run(*args: str, env: dict[str, str] | None = None) -> str:
    out = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True, timeout=120, env=env)
    assert out.returncode == 0, out.stderr
    return out.stdout


@pytest.fixture(scope="module")
def real_bundles(tmp_path_factory: pytest.TempPathFactory) -> Bundles:
    return get_bundles(tmp_path_factory)


def test_info_imports_no_tensorflow(tmp_path: Path) -> None:
    write_bundle(tmp_path / "b", FAKE_TFLITE, make_manifest())
    out = _run("info", str(tmp_path / "b"))
    assert "HEAVY []" in out and "EXIT 0" in out and "humans" in out


def test_edge_commands_import_no_tensorflow(tmp_path: Path) -> None:
    for cmd in (["classify", str(tmp_path), str(tmp_path)], ["camera", str(tmp_path)], ["--help"]):
        assert "HEAVY []" in _run(*cmd)


def test_classify_and_camera_run_for_real_without_tensorflow(real_bundles: Bundles, tmp_path: Path) -> None:
    """The real commands on a real bundle: a verified load, the child probe, the interpreter, OpenCV."""
    import os

    env = {**os.environ, "EDGECLF_CACHE": str(tmp_path / "cache")}
    bundle = str(real_bundles.path("rgb32-int8"))
    out = _run("classify", bundle, str(real_bundles.images / "color-red0.png"), "--json", env=env)
    assert "HEAVY []" in out and "EXIT 0" in out
    row = json.loads(next(line for line in out.splitlines() if line.startswith("{")))
    assert row["label"] == "red"
    events = tmp_path / "events.jsonl"
    out = _run("camera", bundle, "--source", str(real_bundles.images), "--events", str(events), env=env)
    assert "HEAVY []" in out and "EXIT 0" in out
    last = json.loads(events.read_text().splitlines()[-1])
    assert last["event"] == "summary" and last["frames"] == len(list(real_bundles.images.glob("*.png"))) + 1
