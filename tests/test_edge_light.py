"""The edge path (camera, classify, info) never imports TensorFlow, Keras or matplotlib."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from edgeclf.bundle import write_bundle

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


def _run(*args: str) -> str:
    out = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_info_imports_no_tensorflow(tmp_path: Path) -> None:
    write_bundle(tmp_path / "b", FAKE_TFLITE, make_manifest())
    out = _run("info", str(tmp_path / "b"))
    assert "HEAVY []" in out and "EXIT 0" in out and "humans" in out


def test_edge_commands_import_no_tensorflow(tmp_path: Path) -> None:
    for cmd in (["classify", str(tmp_path), str(tmp_path)], ["camera", str(tmp_path)], ["--help"]):
        assert "HEAVY []" in _run(*cmd)
