"""What a real `edgeclf camera`/`classify` process imports (issue 14: import what a run uses, when it uses it).

Pinned as the set of modules (`python -X importtime`), not as megabytes: memory belongs to
benchmarks/edge_footprint.py. Each module below costs resident memory on a Pi for nothing when its option is
off: http.server (with email, and ssl through http.client) for --serve, paho-mqtt (and ssl) for --mqtt,
pydantic for typer's option coercion (edgeclf.cli.lean parses a plain camera/classify line without it),
OpenSSL's libcrypto through hashlib (edgeclf.sha256), rich for tables the edge commands never draw.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from edgeclf.child import module_argv

pytestmark = pytest.mark.tflite_runtime

NEVER = {"tensorflow", "keras", "pydantic", "pydantic_core", "rich", "_hashlib"}  # no edge run needs these
LEAN = {"typer", "click", "edgeclf.cli._app", "edgeclf.cli.edge"}  # a plain camera/classify line: no typer either
SERVE = {"http.server", "email", "ssl", "_ssl"}
MQTT = {"paho", "ssl", "_ssl", "edgeclf.edge.mqtt", "socket"}  # edge/mqtt.py alone: socket and 0.7 MB of peak RSS


def imported(*args: str, cwd: Path) -> set[str]:
    """Every module a real `edgeclf ARGS` process imported, from `-X importtime` on its stderr."""
    argv = module_argv("edgeclf", *args)
    argv[1:1] = ["-X", "importtime"]
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    out = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr[-2000:]
    names = set()
    for line in out.stderr.splitlines():
        m = re.match(r"import time:\s+\d+ \|\s+\d+ \| (\s*)(\S+)$", line)
        if m:
            names.add(m.group(2))
    assert "cv2" in names and "numpy" in names, "no -X importtime lines parsed"
    return names


def tops(names: set[str]) -> set[str]:
    """The modules, and the packages they belong to, less those a bare `import numpy, cv2` imports too (numpy
    1.26 imports hashlib itself, through numpy.random and secrets)."""
    return (names | {n.split(".")[0] for n in names}) - bare()


@functools.lru_cache(maxsize=None)
def bare() -> frozenset[str]:
    code = "import sys, numpy, cv2; print(' '.join(sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    return frozenset(out.stdout.split())


@pytest.fixture()
def folder(bundles, tmp_path: Path) -> Path:
    src = tmp_path / "frames"
    src.mkdir()
    for name in ("horse02-0.png", "human01-10.png"):
        shutil.copy(bundles.images / name, src / name)
    return src


def test_plain_camera_imports_no_server_broker_pydantic_or_tensorflow(bundles, folder: Path, tmp_path: Path) -> None:
    names = tops(imported("-q", "camera", str(bundles.path("b32-int8")), "--source", str(folder),
                          "--max-frames", "1", "--events", os.devnull, cwd=tmp_path))
    assert not names & (NEVER | SERVE | MQTT | LEAN), sorted(names & (NEVER | SERVE | MQTT | LEAN))


def test_camera_with_serve_imports_the_server_and_still_no_pydantic(bundles, folder: Path, tmp_path: Path) -> None:
    """The control: the same check sees a module when its option is on."""
    names = tops(imported("-q", "camera", str(bundles.path("b32-int8")), "--source", str(folder),
                          "--max-frames", "1", "--events", os.devnull, "--serve", "127.0.0.1:0", cwd=tmp_path))
    assert "http.server" in names
    off = (NEVER - {"_hashlib"}) | {"paho"}  # the token check's hmac loads it (as ssl does anyway)
    assert not names & off, sorted(names & off)


def test_classify_imports_no_server_broker_pydantic_or_tensorflow(bundles, tmp_path: Path) -> None:
    names = tops(imported("classify", str(bundles.path("b32-float32")), str(bundles.images / "gray.png"),
                          cwd=tmp_path))
    assert not names & (NEVER | SERVE | MQTT | LEAN), sorted(names & (NEVER | SERVE | MQTT | LEAN))


def test_a_line_typer_parses_still_works(bundles, tmp_path: Path) -> None:
    """A value the lean parser leaves to typer (an option repeated) still runs, through typer and pydantic."""
    b = str(bundles.path("b32-float32"))
    names = tops(imported("classify", b, str(bundles.images / "gray.png"), "--top-k", "1", "--top-k", "2",
                          cwd=tmp_path))
    assert "pydantic" in names and "typer" in names
