"""The wheel builds, installs edgeclf only (no top-level `train`/`edge`), and every module imports from it."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

from .conftest import REPO


def test_wheel_builds_and_imports(tmp_path: Path) -> None:
    subprocess.run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(tmp_path / "dist"),
                    str(REPO)], check=True, capture_output=True, timeout=300)
    wheel = next((tmp_path / "dist").glob("edgeclf-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert tops == {"edgeclf"}, tops
    # edgeclf.__main__ runs the CLI when imported (that is its job), so it is checked by running it instead.
    modules = sorted(n[:-3].replace("/", ".").removesuffix(".__init__") for n in names
                     if n.endswith(".py") and not n.endswith("__main__.py"))
    assert {"edgeclf.train", "edgeclf.convert", "edgeclf.edge", "edgeclf.bundle", "edgeclf.cli"} <= set(modules)
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--quiet", "--target", str(site), str(wheel)],
                   check=True, timeout=300)
    code = ("import importlib, sys; mods = sys.argv[1:]; [importlib.import_module(m) for m in mods]; "
            "import edgeclf; assert edgeclf.__file__.startswith(%r), edgeclf.__file__; print(len(mods))" % str(site))
    out = subprocess.run([sys.executable, "-c", code, *modules], capture_output=True, text=True, timeout=300,
                         cwd=tmp_path, env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin", "PYTHONNOUSERSITE": "1"})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == str(len(modules))
    ver = subprocess.run([sys.executable, "-m", "edgeclf", "--version"], capture_output=True, text=True, timeout=60,
                         cwd=tmp_path, env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin", "PYTHONNOUSERSITE": "1"})
    assert ver.returncode == 0 and ver.stdout.startswith("edgeclf "), ver.stderr
