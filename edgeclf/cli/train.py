from __future__ import annotations

from pathlib import Path

import typer

from ..errors import NotBuiltError
from ._app import command


@command("train")
def train(data_dir: Path = typer.Argument(..., help="Folder with one sub-folder of images per class.")) -> None:
    """Train the classifier at 300x300 and 150x150 input and write a run directory."""
    raise NotBuiltError("`edgeclf train` is not built yet (issue 3)")
