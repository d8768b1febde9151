"""Verbosity and logging chosen by the global options (-v, -q): shared by every command, and by the lean
camera/classify start (edgeclf.cli.lean), so no typer here."""

from __future__ import annotations

import logging
import os
import sys
import warnings

log = logging.getLogger("edgeclf")


class _Settings:
    """Verbosity chosen by the global options, read by commands for progress bars and tracebacks."""

    verbose: int = 0
    quiet: bool = False

    @property
    def show_progress(self) -> bool:
        return not self.quiet and sys.stderr.isatty()


settings = _Settings()


def configure(verbose: int, quiet: bool) -> None:
    """Apply -v/-q: the log level and format, and what the libraries under us may print."""
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


def echo(message: str, err: bool = False) -> None:
    """One line to stdout (or stderr), flushed: what typer.echo does for text, without typer."""
    stream = sys.stderr if err else sys.stdout
    line = message + "\n"
    try:
        stream.write(line)
    except UnicodeEncodeError:  # an ASCII-only stream (PYTHONIOENCODING=ascii, some service managers), or a strict
        # one given a file name's undecodable bytes: as click does, UTF-8 out; such a name's own bytes as they are
        buffer = getattr(stream, "buffer", None)
        if buffer is None:
            stream.write(line.encode("ascii", "backslashreplace").decode("ascii"))
        else:
            stream.flush()
            buffer.write(line.encode("utf-8", "surrogateescape"))
    stream.flush()


def guarded(fn, *args, **kwargs):  # type: ignore[no-untyped-def]
    """Call a command's body: a library error becomes one line and its exit code (SystemExit), a full disk too;
    Ctrl-C is "interrupted" and 130. -v adds the traceback."""
    from ..errors import EdgeclfError, disk_full

    try:
        return fn(*args, **kwargs)
    except EdgeclfError as e:
        if settings.verbose:
            log.exception("traceback")
        echo(f"error: {e}", err=True)
        raise SystemExit(e.exit_code) from None
    except KeyboardInterrupt:
        echo("interrupted", err=True)
        raise SystemExit(130) from None
    except OSError as e:  # a full disk anywhere a command writes: one line, not a traceback
        full = disk_full(e)
        if full is None:
            raise
        if settings.verbose:
            log.exception("traceback")
        echo(f"error: {full}", err=True)
        raise SystemExit(full.exit_code) from None
