from __future__ import annotations

from pathlib import Path

import typer

from ..errors import NotBuiltError
from ._app import command


@command("convert")
def convert(run: Path = typer.Argument(..., help="Run directory written by `edgeclf train`.")) -> None:
    """Export verified (quantized) TFLite bundles at 300 and 150 input from a training run."""
    raise NotBuiltError("`edgeclf convert` is not built yet (issue 4)")
