"""Hostile bundle files (issue #12, item 4): model.tflite or manifest.json that is a symlink to /dev/zero,
a FIFO, a folder or an oversized file is refused in one line before it is read; nothing hangs. Each case
runs `edgeclf info` in a real child process with a timeout."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from edgeclf.bundle import MANIFEST_FILE, MAX_MANIFEST_BYTES, MODEL_FILE, write_bundle
from edgeclf.child import module_argv

from .test_bundle import FAKE_TFLITE, make_manifest


def _info(bundle: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(module_argv("edgeclf", "info", str(bundle), *extra), capture_output=True, text=True,
                          timeout=60)


def _one_error_line(out: subprocess.CompletedProcess) -> str:
    lines = [ln for ln in out.stderr.splitlines() if ln.strip()]
    assert out.returncode == 1 and len(lines) == 1 and lines[0].startswith("error: "), out.stderr
    assert "Traceback" not in out.stderr
    return lines[0]


def _replace(bundle: Path, name: str, how: str) -> None:
    f = bundle / name
    f.unlink()
    if how == "dev-zero":
        f.symlink_to("/dev/zero")
    elif how == "fifo":
        os.mkfifo(f)
    elif how == "folder":
        f.mkdir()
    elif how == "dangling":
        f.symlink_to(bundle / "nowhere")


@pytest.mark.parametrize("name", [MODEL_FILE, MANIFEST_FILE])
@pytest.mark.parametrize("how,says", [("dev-zero", "is a character device, not a regular file"),
                                      ("fifo", "is a FIFO (named pipe), not a regular file"),
                                      ("folder", "is a folder, not a regular file"),
                                      ("dangling", "no ")])
def test_special_files_are_refused_without_reading_or_hanging(tmp_path: Path, name: str, how: str, says: str) -> None:
    b = tmp_path / "b"
    write_bundle(b, FAKE_TFLITE, make_manifest())
    _replace(b, name, how)
    line = _one_error_line(_info(b))
    assert says in line


def test_oversized_manifest_is_refused_before_reading(tmp_path: Path) -> None:
    b = tmp_path / "b"
    write_bundle(b, FAKE_TFLITE, make_manifest())
    with open(b / MANIFEST_FILE, "r+b") as fh:
        fh.truncate(MAX_MANIFEST_BYTES + 1)  # sparse: costs no disk
    assert "over the cap" in _one_error_line(_info(b))


@pytest.mark.parametrize("size,says", [(100 * 1024**2, "the manifest says"), (3 * 1024**3, "over the cap")])
def test_oversized_model_is_refused_before_reading(tmp_path: Path, size: int, says: str) -> None:
    b = tmp_path / "b"
    write_bundle(b, FAKE_TFLITE, make_manifest())
    with open(b / MODEL_FILE, "r+b") as fh:
        fh.truncate(size)  # sparse: costs no disk
    assert says in _one_error_line(_info(b))


def test_a_symlink_to_a_regular_file_still_works(tmp_path: Path) -> None:
    b = tmp_path / "b"
    write_bundle(b, FAKE_TFLITE, make_manifest())
    elsewhere = tmp_path / "models" / "m.tflite"
    elsewhere.parent.mkdir()
    (b / MODEL_FILE).rename(elsewhere)
    (b / MODEL_FILE).symlink_to(elsewhere)
    out = _info(b)
    assert out.returncode == 0, out.stderr
