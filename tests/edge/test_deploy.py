"""The systemd unit and the README's "On the Pi" commands use only options that exist."""

from __future__ import annotations

import configparser
import re
import shlex

import pytest
import typer

from edgeclf.cli import app

from .fixtures import REPO

# The whole edge suite runs again in the tflite-runtime 2.14 venv (scripts/test.sh).
pytestmark = pytest.mark.tflite_runtime


def _options(command: str) -> set[str]:
    group = typer.main.get_command(app)
    opts = {o for p in group.params for o in p.opts}
    return opts | {o for p in group.commands[command].params for o in getattr(p, "opts", [])}


def _check(argv: list[str]) -> None:
    i = argv.index("camera") if "camera" in argv else argv.index("classify")
    known = _options(argv[i])
    used = [a.split("=")[0] for a in argv if a.startswith("-")]
    assert set(used) <= known, sorted(set(used) - known)


def test_systemd_unit_runs_a_real_camera_command() -> None:
    text = (REPO / "deploy" / "edgeclf-camera.service").read_text()
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.read_string(text.replace("\\\n", " "))
    service = unit["Service"]
    argv = shlex.split(service["ExecStart"])
    assert argv[0].endswith("/edgeclf") and "camera" in argv and "--events" in argv and "--source" in argv
    _check(argv)
    assert service["Restart"] == "on-failure" and service["KillSignal"] == "SIGTERM"
    assert "video" in service["SupplementaryGroups"]
    assert unit["Install"]["WantedBy"] == "multi-user.target"


def test_readme_pi_commands_use_real_options() -> None:
    page = (REPO / "docs" / "pi.md").read_text()  # the README's "On the Pi" moved here
    section = page[page.index("## Commands"):]
    lines = [ln.split("#")[0] for ln in re.findall(r"^edgeclf (?:camera|classify) .*$", section, re.M)]
    assert len(lines) >= 8
    for line in lines:
        _check(shlex.split(line))
    for flag in ("--source", "--threads", "--realtime", "--crop", "--top-k", "--threshold", "--smooth", "--every",
                 "--events", "--display", "--save", "--on-change", "--serve", "--token"):
        assert f"`{flag}" in section, flag
