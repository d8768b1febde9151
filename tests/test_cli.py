from __future__ import annotations

import re

import pytest
from typer.testing import CliRunner

from edgeclf import __version__
from edgeclf.cli import app

from .conftest import REPO

COMMANDS = ["train", "convert", "camera", "classify", "eval", "bench", "info"]
runner = CliRunner()


def test_help_lists_every_command() -> None:
    r = runner.invoke(app, ["--help"])
    assert r.exit_code == 0
    for c in COMMANDS:
        assert re.search(rf"^\s+{c}\s", r.output, re.M), c


def test_version() -> None:
    r = runner.invoke(app, ["--version"])
    assert r.exit_code == 0 and __version__ in r.output


@pytest.mark.parametrize("cmd", COMMANDS)
def test_every_command_has_help_and_is_in_readme(cmd: str) -> None:
    r = runner.invoke(app, [cmd, "--help"])
    assert r.exit_code == 0
    doc = app.registered_commands[[c.name for c in app.registered_commands].index(cmd)].callback.__doc__
    assert doc and doc.strip()
    readme = (REPO / "README.md").read_text()
    assert f"edgeclf {cmd}" in readme, f"`edgeclf {cmd}` is not in the README's CLI reference"


def test_library_error_is_one_line_no_traceback(tmp_path) -> None:
    r = runner.invoke(app, ["info", str(tmp_path / "nope")])
    assert r.exit_code != 0
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and "no such bundle" in lines[0]
    assert "Traceback" not in r.output
