from __future__ import annotations

from pathlib import Path

import typer

from ..errors import NotBuiltError
from ._app import command


@command("bench")
def bench(target: Path = typer.Argument(..., help="Run directory or folder of bundles.")) -> None:
    """Benchmark every bundle: size, accuracy, latency, memory, on each installed runtime."""
    raise NotBuiltError("`edgeclf bench` is not built yet (issue 6)")
