"""The `edgeclf` command line: a thin layer over `edgeclf.train`, `edgeclf.convert` and `edgeclf.edge`.

Each command module imports its library lazily, so `edgeclf camera/classify/info` never import TensorFlow.
"""

from __future__ import annotations

from . import bench, convert, edge, evaluate, info, train  # noqa: F401  (registers the commands)
from ._app import app

__all__ = ["app", "main"]


def main() -> None:
    import sys

    from .quiet import filter_native_stderr, wants_verbose

    if not wants_verbose(sys.argv[1:]):
        filter_native_stderr()
    from .lean import run

    run(sys.argv[1:])  # a plain `camera`/`classify` line runs (and exits) here, without pydantic (issue 14)
    app()
