"""The CLI's one progress bar: draws what the library reports through `edgeclf.progress.Progress`."""

from __future__ import annotations

import contextlib
from typing import IO, Iterator, Optional

from ..progress import Progress


@contextlib.contextmanager
def progress_bar(enabled: bool, stream: Optional[IO[str]] = None, transient: bool = True) -> Iterator[Optional[Progress]]:
    """A rich bar on `stream` (default stderr) while the block runs, and its `Progress` callback; None when
    not `enabled` (`-q`, or stderr is not a terminal)."""
    if not enabled:
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress as Bar, TextColumn, TimeElapsedColumn

    console = Console(file=stream) if stream is not None else Console(stderr=True)
    with Bar(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
             console=console, transient=transient) as bar:
        task = bar.add_task("", total=None)

        def update(what: str, done: int, total: Optional[int]) -> None:
            bar.update(task, description=what, completed=done, total=total)

        yield update
