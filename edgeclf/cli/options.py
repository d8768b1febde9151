"""Options that several commands take, declared once (issue #13: same name, same thing, one declaration).

Each is an `Annotated` type a command uses as its parameter's annotation: `runtime: Runtime = None`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

Bundle = Annotated[Path, typer.Argument(help="Bundle folder made by `edgeclf convert` (or its manifest/model file).")]
Runtime = Annotated[Optional[str], typer.Option(
    "--runtime", help="ai-edge-litert, tflite-runtime or tensorflow (default: the first installed, in that order).")]
Threads = Annotated[Optional[int], typer.Option("--threads", help="Interpreter threads (default: all cores).")]
RunData = Annotated[Optional[Path], typer.Option(
    "--data", metavar="DIR", help="The run's data folder, if it moved since training.")]
