"""The `edgeclf` command line: a thin layer over `edgeclf.train`, `edgeclf.convert` and `edgeclf.edge`.

Each command module imports its library lazily, so `edgeclf camera/classify/info` never import TensorFlow.
"""

from __future__ import annotations

from typing import Any

__all__ = ["app", "main"]


def __getattr__(name: str) -> Any:
    """`app`, with every command registered; imported on first use, so that a plain `camera`/`classify` line
    (edgeclf.cli.lean) loads only the edge commands' module, not train's, convert's, bench's... (issue 14)."""
    if name != "app":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from . import bench, convert, edge, evaluate, info, train  # noqa: F401  (registers the commands, in order)
    from ._app import app

    return app


def main() -> None:
    import sys

    from .quiet import filter_native_stderr, wants_verbose

    if not wants_verbose(sys.argv[1:]):
        filter_native_stderr()
    from .no_openssl import keep_out, uses_mqtt, wants_no_tls

    if wants_no_tls(sys.argv[1:]):  # plain mqtt:// and HTTP: paho and http.server load no OpenSSL (issue 14)
        keep_out(mqtt=uses_mqtt(sys.argv[1:]))
    from .lean import run

    run(sys.argv[1:])  # a plain `camera`/`classify` line runs (and exits) here, without pydantic (issue 14)
    from . import app

    app()
