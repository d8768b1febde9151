"""The typer app, global options and error handling shared by every command.

Commands only parse options and call one library function. Library errors (`EdgeclfError`) become one
line on stderr and a non-zero exit; `-v` shows the traceback as well.
"""

from __future__ import annotations

import functools
import logging
import os
import sys
import warnings
from typing import Any, Callable, Optional, TypeVar

import typer

from .. import __version__
from ..errors import EdgeclfError, disk_full

F = TypeVar("F", bound=Callable[..., Any])

app = typer.Typer(
    name="edgeclf",
    help="Train an image classifier on a desktop, convert it to verified TFLite bundles, run it live on a Raspberry Pi.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

log = logging.getLogger("edgeclf")


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
    level = logging.WARNING if quiet else (logging.DEBUG if verbose >= 2 else logging.INFO)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s" if verbose == 0 else "%(levelname)s %(name)s: %(message)s"))
    log.handlers[:] = [handler]
    log.setLevel(level)
    log.propagate = False
    settings.verbose = verbose
    settings.quiet = quiet
    if not verbose:
        # TensorFlow's C++ start-up banners (oneDNN, CPU features) are nothing a user can act on; -v shows them.
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        # Its Python warnings too (AutoGraph's "could not transform ..." when $TMPDIR is full, deprecations).
        logging.getLogger("tensorflow").setLevel(logging.ERROR)
        # And the Python warnings of the libraries under us (Keras' "The structure of `inputs` doesn't match").
        warnings.filterwarnings("ignore", module=r"(keras|tensorflow|tf_keras|absl|google|mediapipe)(\.|$)")


class _Settings:
    """Verbosity chosen by the global options, read by commands for progress bars and tracebacks."""

    verbose: int = 0
    quiet: bool = False

    @property
    def show_progress(self) -> bool:
        return not self.quiet and sys.stderr.isatty()


settings = _Settings()


def command(*args: Any, **kwargs: Any) -> Callable[[F], F]:
    """`app.command` whose library errors become one line and an exit code."""

    def deco(fn: F) -> F:
        @functools.wraps(fn)
        def wrapper(*a: Any, **kw: Any) -> Any:
            try:
                return fn(*a, **kw)
            except EdgeclfError as e:
                if settings.verbose:
                    log.exception("traceback")
                typer.echo(f"error: {e}", err=True)
                raise typer.Exit(e.exit_code) from None
            except KeyboardInterrupt:
                typer.echo("interrupted", err=True)
                raise typer.Exit(130) from None
            except OSError as e:  # a full disk anywhere a command writes: one line, not a traceback
                full = disk_full(e)
                if full is None:
                    raise
                if settings.verbose:
                    log.exception("traceback")
                typer.echo(f"error: {full}", err=True)
                raise typer.Exit(full.exit_code) from None

        app.command(*args, **kwargs)(wrapper)
        return fn

    return deco
