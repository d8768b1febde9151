"""One progress protocol for every long command: the library reports, the CLI draws (issue #13 item 5).

A `Progress` is any callable `progress(what, done, total)`: `what` says what is going on ("checking images",
"150 px: epoch 3/30", "150-int8: converting"), `done` of `total` steps (`total` None: not known yet). Library
functions take `progress: Progress | None` (None: nobody is watching) and never import a drawing library; the
CLI passes `edgeclf.cli.progress.progress_bar`'s callback, or None under `-q` or when stderr is not a terminal.
"""

from __future__ import annotations

from typing import Callable, Optional

Progress = Callable[[str, int, Optional[int]], None]
