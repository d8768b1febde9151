"""Terminal injection (issue #12, item 5): labels from a manifest (and file names) with ANSI escape codes,
C1 controls or rich markup are shown escaped by `classify` and `info`, never sent to the terminal raw."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from .conftest import run_cli

pytestmark = pytest.mark.tflite_runtime

EVIL = ["\x1b[2J\x1b]0;pwned\x07horses", "hu\u009b31mmans[bold red]x[/bold red]"]


@pytest.fixture()
def evil_bundle(bundles, tmp_path: Path) -> Path:
    b = tmp_path / "evil"
    shutil.copytree(bundles.path("b32-float32"), b)
    m = json.loads((b / "manifest.json").read_text())
    m["labels"], m["positive_label"] = EVIL, EVIL[1]
    (b / "manifest.json").write_text(json.dumps(m, ensure_ascii=False))
    return b


def _no_controls(text: str) -> None:
    bad = sorted({f"U+{ord(c):04X}" for c in text if (ord(c) < 0x20 and c not in "\n\t") or 0x7F <= ord(c) <= 0x9F})
    assert not bad, f"raw control characters reached the terminal: {bad}\n{text!r}"


def test_classify_escapes_labels_and_file_names(evil_bundle: Path, bundles, tmp_path: Path) -> None:
    img = tmp_path / "a\x1b[31mb.png"
    shutil.copy(bundles.images / "gray.png", img)
    out = run_cli("classify", str(evil_bundle), str(img))
    assert out.returncode == 0, out.stderr
    _no_controls(out.stdout)
    assert "\\x1b[2J\\x1b]0;pwned\\x07horses" in out.stdout and "a\\x1b[31mb.png" in out.stdout
    js = run_cli("classify", "--json", str(evil_bundle), str(img))
    assert js.returncode == 0, js.stderr
    _no_controls(js.stdout)
    assert json.loads(js.stdout)["top"][0][0] in EVIL  # still the true label for a program


def test_info_escapes_labels_and_shows_markup_literally(evil_bundle: Path) -> None:
    out = run_cli("info", str(evil_bundle))
    assert out.returncode == 0, out.stderr
    _no_controls(out.stdout)
    flat = "".join(out.stdout.split())  # rich may wrap the long row
    assert "\\x1b[2J" in flat and "\\x9b31m" in flat and "[boldred]x[/boldred]" in flat
    js = run_cli("info", "--json", str(evil_bundle))
    _no_controls(js.stdout)
    assert json.loads(js.stdout)["labels"] == EVIL
