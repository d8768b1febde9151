"""The typer app, global options and error handling shared by every command.

Commands only parse options and call one library function. Library errors (`EdgeclfError`) become one
line on stderr and a non-zero exit; `-v` shows the traceback as well (`edgeclf.cli.settings.guarded`, which
the lean camera/classify start uses without typer).
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Optional, TypeVar

import typer

from .. import __version__
from .settings import configure, guarded, settings  # noqa: F401  (settings: what the commands import from here)

F = TypeVar("F", bound=Callable[..., Any])

app = typer.Typer(
    name="edgeclf",
    help="Train an image classifier on a desktop, convert it to verified TFLite bundles, run it live on a Raspberry Pi.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"edgeclf {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    verbose: int = typer.Option(0, "--verbose", "-v", count=True, help="More output; -v also shows tracebacks."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Only errors and results; no progress bars."),
    version: Optional[bool] = typer.Option(None, "--version", callback=_version, is_eager=True,
                                           help="Print the version and exit."),
) -> None:
    configure(verbose, quiet)


def command(*args: Any, **kwargs: Any) -> Callable[[F], F]:
    """`app.command` whose library errors become one line and an exit code."""

    def deco(fn: F) -> F:
        @functools.wraps(fn)
        def wrapper(*a: Any, **kw: Any) -> Any:
            return guarded(fn, *a, **kw)

        app.command(*args, **kwargs)(wrapper)
        return fn

    return deco
