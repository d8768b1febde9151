"""Security item 1 (issue #12): a child process imports only the installed edgeclf, never a package
planted in the directory where a command is started."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from edgeclf.child import module_argv

pytestmark = pytest.mark.tflite_runtime

EDGECLF = Path(sys.executable).parent / "edgeclf"  # the console script, as a user runs it


def _plant(tmp_path: Path) -> tuple[Path, Path]:
    """A cwd holding ./edgeclf/__init__.py (and ./numpy.py) that write a marker when imported."""
    cwd = tmp_path / "cwd"
    marker = tmp_path / "planted-code-ran"
    (cwd / "edgeclf").mkdir(parents=True)
    code = f"open({str(marker)!r}, 'a').write(__name__ + '\\n')\n"
    (cwd / "edgeclf" / "__init__.py").write_text(code)
    (cwd / "numpy.py").write_text(code)
    return cwd, marker


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONSAFEPATH")}
    env["EDGECLF_CACHE"] = str(tmp_path / "cache")  # empty cache: the probe child really runs
    return env


@pytest.mark.skipif(not EDGECLF.exists(), reason="edgeclf console script not installed in this venv")
@pytest.mark.parametrize("command", ["classify", "info --check"])
def test_planted_package_in_cwd_is_not_imported_by_the_probe_child(bundles, tmp_path: Path, command: str) -> None:
    cwd, marker = _plant(tmp_path)
    bundle = bundles.path("b32-float32")
    args = [str(EDGECLF), *command.split(), str(bundle)]
    if command == "classify":
        args.append(str(bundles.images / "gray.png"))
    out = subprocess.run(args, cwd=cwd, env=_env(tmp_path), capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr
    assert list((tmp_path / "cache").rglob("*.ok")), "the probe child did not run"
    assert not marker.exists(), f"code in the cwd ran: {marker.read_text()}"


@pytest.mark.parametrize("module,args", [("edgeclf.edge.probe", ()), ("edgeclf.bench.footprint", ("--help",)),
                                         ("edgeclf.bench.worker", ("ai-edge-litert",))])
def test_every_child_module_skips_the_cwd(tmp_path: Path, module: str, args: tuple[str, ...]) -> None:
    """Each module edgeclf starts as a child, started through `module_argv` from a planted cwd."""
    cwd, marker = _plant(tmp_path)
    out = subprocess.run(module_argv(module, *args), cwd=cwd, env=_env(tmp_path), input=b"{}",
                         capture_output=True, timeout=120)
    assert b"No module named" not in out.stderr, out.stderr.decode()
    assert not marker.exists(), f"code in the cwd ran: {marker.read_text()}"


def test_plain_dash_m_would_import_the_planted_package(tmp_path: Path) -> None:
    """The case the helper exists for: `python -m` from that cwd runs the planted code."""
    cwd, marker = _plant(tmp_path)
    subprocess.run([sys.executable, "-m", "edgeclf.edge.probe"], cwd=cwd, env=_env(tmp_path), input=b"",
                   capture_output=True, timeout=60)
    assert marker.exists()
