from __future__ import annotations

from pathlib import Path
from typing import List

import typer

from ..errors import NotBuiltError
from ._app import command


@command("classify")
def classify(
    bundle: Path = typer.Argument(..., help="Bundle folder made by `edgeclf convert`."),
    images: List[Path] = typer.Argument(..., help="Image files or folders."),
) -> None:
    """Classify image files with a bundle (the edge pipeline, no camera)."""
    raise NotBuiltError("`edgeclf classify` is not built yet (issue 5)")


@command("camera")
def camera(bundle: Path = typer.Argument(..., help="Bundle folder made by `edgeclf convert`.")) -> None:
    """Classify live frames from a camera, video, folder or stream."""
    raise NotBuiltError("`edgeclf camera` is not built yet (issue 5)")
