"""The lean start of `edgeclf camera`/`classify` (edgeclf.cli.lean, issue 14) gives the command exactly the
arguments typer gives it, and leaves every command line it does not fully model to typer."""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

import pytest

from edgeclf.cli import app, lean

pytestmark = pytest.mark.tflite_runtime


def typer_kwargs(argv: list[str]) -> dict[str, Any]:
    """The keyword arguments typer passes to the command for `edgeclf ARGV` (the command itself not run)."""
    import typer.main

    got: dict[str, Any] = {}
    saved = [(c, c.callback) for c in app.registered_commands]
    try:
        for c, cb in saved:
            def record(*a: Any, **kw: Any) -> None:
                got.update(kw)

            c.callback = functools.update_wrapper(record, cb.__wrapped__)  # same signature, same options
        typer.main.get_command(app).main(list(argv), prog_name="edgeclf", standalone_mode=False)
    finally:
        for c, cb in saved:
            c.callback = cb
    return got


def test_the_lean_parser_models_every_option_of_camera_and_classify() -> None:
    """A new option using a typer feature the lean parser does not reproduce fails here, not silently later; and
    the table a camera process reads instead of typer's definitions (edgeclf/cli/lean_table.py) is theirs."""
    params = lean.lean_params()
    assert params == lean.typer_params(), "edgeclf/cli/lean_table.py is out of date; its TABLE should be:\n" + \
        lean.table_source(lean.typer_params())
    import inspect

    from edgeclf.cli import edge_run

    for name, fn in (("camera", edge_run.camera_command), ("classify", edge_run.classify_command)):
        assert list(inspect.signature(fn).parameters) == [p.name for p in params[name]]  # the body takes them all
    camera = {p.name for p in params["camera"]}
    assert {"bundle", "source", "serve", "mqtt", "shadow", "capture", "threshold", "display"} <= camera
    assert {p.name for p in params["classify"]} >= {"bundle", "images", "top_k", "as_json"}


LINES = [
    ["camera", "b"],
    ["-q", "camera", "b", "--source", "/dev/null", "--display", "--max-frames", "3", "--hysteresis", "0.25",
     "--threshold", "horses=0.5", "--threshold", "0.3", "--events", "/dev/null", "--mqtt-ca=/x/ca.pem",
     "--smooth", "5", "--save-segment", "1e2", "--events-only", "horses", "--unknown", "auto"],
    ["-v", "-v", "camera", "--serve", "127.0.0.1:0", "b", "--token", "0123456789", "--shadow", "other",
     "--capture", "cap", "--capture-below=0.5", "--watch", "--realtime", "--mqtt", "mqtt://h/p",
     "--mqtt-interval", "0", "--shadow-every", "2", "--size", "640x480", "--crop", "letterbox"],
    ["-vv", "classify", "b", "x.png", "y.png", "--top-k", "2", "--json", "--max-pixels", "100"],
    ["classify", "--threads", "1", "b", "x.png", "--runtime", "tflite-runtime", "--config", "c.json"],
]


@pytest.mark.parametrize("argv", LINES, ids=[" ".join(a[:3]) for a in LINES])
def test_same_arguments_as_typer(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EDGECLF_TOKEN", raising=False)
    monkeypatch.delenv("EDGECLF_MQTT", raising=False)
    mine = lean.parse(argv, lean.lean_params())[3]
    theirs = typer_kwargs(argv)
    assert mine == theirs
    assert {k: type(v) for k, v in mine.items()} == {k: type(v) for k, v in theirs.items()}


def test_same_arguments_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGECLF_TOKEN", "from-the-environment")
    monkeypatch.setenv("EDGECLF_MQTT", "mqtt://broker/edgeclf")
    argv = ["camera", "b", "--serve", "0.0.0.0:8080"]
    mine = lean.parse(argv, lean.lean_params())[3]
    assert mine["token"] == "from-the-environment" and mine["mqtt"] == "mqtt://broker/edgeclf"
    assert mine == typer_kwargs(argv)


@pytest.mark.parametrize("argv", [
    ["camera", "b", "--help"], ["--help"], ["--version"], ["camera"], ["camera", "b", "c"], ["classify", "b"],
    ["camera", "b", "--no-such-option"], ["camera", "b", "--smooth", "two"], ["camera", "b", "--smooth", "2.0"],
    ["camera", "b", "--hysteresis", "-0.5"], ["camera", "b", "--source", "0", "--source", "1"],
    ["camera", "b", "--display=yes"], ["-qv", "camera", "b"], ["camera", "--", "b"], ["info", "b"],
    ["train", "data"], ["camera", "b", "--max-frames"], ["classify", "b", "-"],
])
def test_other_lines_are_left_to_typer(argv: list[str]) -> None:
    with pytest.raises(lean.NotPlain):
        lean.parse(argv, lean.lean_params())


def test_an_unreadable_existing_path_is_left_to_typer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    f = tmp_path / "secret.png"
    f.write_bytes(b"x")
    monkeypatch.setattr(lean.os, "access", lambda path, mode: False)  # as root, chmod 000 is still readable
    with pytest.raises(lean.NotPlain):
        lean.parse(["classify", "b", str(f)], lean.lean_params())


def test_the_pi_service_takes_the_lean_start(monkeypatch: pytest.MonkeyPatch) -> None:
    """deploy/edgeclf-camera.service's command line is one the lean parser runs, with typer's arguments."""
    import configparser
    import shlex

    from .fixtures import REPO

    monkeypatch.delenv("EDGECLF_TOKEN", raising=False)
    monkeypatch.delenv("EDGECLF_MQTT", raising=False)
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.read_string((REPO / "deploy" / "edgeclf-camera.service").read_text().replace("\\\n", " "))
    argv = shlex.split(unit["Service"]["ExecStart"])[1:]
    assert lean.parse(argv, lean.lean_params())[3] == typer_kwargs(argv)


@pytest.mark.parametrize("case", ["ok", "no bundle", "bad image"])
def test_a_real_process_answers_the_same_both_ways(bundles, tmp_path: Path, case: str) -> None:
    """The same classify run, once by the lean start and once through typer (an option given twice is typer's):
    the same output, error lines and exit code."""
    import subprocess

    from edgeclf.child import module_argv

    bundle = str(bundles.path("b32-float32")) if case != "no bundle" else str(tmp_path / "missing")
    image = bundles.images / "gray.png"
    if case == "bad image":
        image = tmp_path / "broken.png"
        image.write_bytes(b"not a png")
    argv = ["classify", bundle, str(image), str(bundles.images / "photo.jpg"), "--top-k", "2"]
    runs = [subprocess.run(module_argv("edgeclf", *a), cwd=tmp_path, capture_output=True, text=True, timeout=120)
            for a in (argv, argv + ["--top-k", "2"])]
    lean_run, typer_run = runs
    assert (lean_run.returncode, lean_run.stdout, lean_run.stderr) == \
        (typer_run.returncode, typer_run.stdout, typer_run.stderr)
    assert (lean_run.returncode == 0) == (case == "ok"), lean_run.stderr


@pytest.mark.parametrize("encoding", ["ascii", "utf-8:strict"])
def test_a_name_the_terminal_cannot_encode_is_printed_not_a_traceback(bundles, tmp_path: Path, encoding: str) -> None:
    """The lean start prints without typer: a non-ASCII file name on an ASCII-only stdout (as click did: UTF-8),
    and a name with bytes that are not UTF-8 on a strict one (its own bytes), exit 0 either way."""
    import shutil
    import subprocess
    import sys

    from .fixtures import REPO

    images = [tmp_path / "cheval_é.png", tmp_path / os.fsdecode(b"bad_\xff.png")]
    for p in images:
        shutil.copy(bundles.images / "horse02-0.png", p)
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONIOENCODING": encoding}
    r = subprocess.run([sys.executable, "-m", "edgeclf", "-q", "classify", str(bundles.path("b32-float32")),
                        *map(str, images)], capture_output=True, env=env, cwd=REPO, timeout=120)
    assert r.returncode == 0, r.stderr.decode(errors="replace")[-2000:]
    assert "cheval_é.png".encode() in r.stdout and b"bad_\xff.png" in r.stdout
