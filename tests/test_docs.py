"""Every `edgeclf ...` command shown in README.md and docs/*.md parses against the real CLI."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import typer

from edgeclf.cli import app

from .conftest import REPO

PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def _shown_commands() -> list[tuple[str, str]]:
    """(page:line, command) for each line of a fenced block that starts with `edgeclf `."""
    found = []
    for page in PAGES:
        fenced = False
        for n, line in enumerate(page.read_text("utf-8").splitlines(), 1):
            if line.lstrip().startswith("```"):
                fenced = not fenced
                continue
            text = line.strip()
            if fenced and text.startswith("edgeclf "):
                found.append((f"{page.relative_to(REPO)}:{n}", text))
    return found


def _parse(cmdline: str) -> None:
    words = shlex.split(cmdline, comments=True)[1:]
    root = typer.main.get_command(app)
    k = next((i for i, w in enumerate(words) if not w.startswith("-")), len(words))  # global options first
    if k == len(words):
        root.make_context("edgeclf", words)
        return
    ctx = root.make_context("edgeclf", words[:k] + [words[k]])
    sub = root.get_command(ctx, words[k])
    assert sub is not None, f"no command {words[k]!r}"
    sub.make_context(words[k], words[k + 1:], parent=ctx)


def test_the_docs_show_commands() -> None:
    assert len(_shown_commands()) >= 20


@pytest.mark.parametrize("where,cmdline", _shown_commands(), ids=lambda v: v if ":" in str(v) else None)
def test_shown_command_parses(where: str, cmdline: str) -> None:
    try:
        _parse(cmdline)
    except Exception as e:  # typer vendors click (typer._click), so match its exceptions by shape, not import
        if type(e).__name__ == "Exit":
            return  # --help / --version
        if hasattr(e, "format_message"):
            pytest.fail(f"{where}: `{cmdline}` does not parse: {e.format_message()}")
        raise


@pytest.mark.parametrize("wrong", ["edgeclf train DATA --no-such-option", "edgeclf trian DATA",
                                   "edgeclf convert RUN --quantize int9x --max-drop"])
def test_a_wrong_command_is_caught(wrong: str) -> None:
    with pytest.raises(Exception):
        _parse(wrong)
