from __future__ import annotations

import os
from pathlib import Path
from typing import List, Optional

import typer

from ._app import command, settings
from .options import RunData
from .progress import progress_bar


@command("bench")
def bench(
    target: Path = typer.Argument(..., help="Run directory, folder of bundles, or one bundle."),
    repeats: int = typer.Option(5, "--repeats", help="Timing repeats; medians over them are reported."),
    warmup: int = typer.Option(5, "--warmup", help="Untimed invokes per interpreter before timing."),
    frames: int = typer.Option(30, "--frames", help="Invokes (and frames) timed per repeat."),
    threads: Optional[List[int]] = typer.Option(None, "--threads", help="Thread count; repeat for several "
                                                "(default: 1 and all cores)."),
    runtime: Optional[List[str]] = typer.Option(None, "--runtime", help="ai-edge-litert, tflite-runtime or "
                                                "tensorflow; repeat for several (default: every one installed)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Folder for bench.csv/.md/.json/.png "
                                       "(default: RUN/bench for a run, else ./bench)."),
    source: Optional[Path] = typer.Option(None, "--source", help="Video file or image folder for the per-frame "
                                          "timing (default: the run's held-out images)."),
    run: Optional[Path] = typer.Option(None, "--run", help="Run directory with the held-out split and Keras "
                                       "models, when TARGET is not a run."),
    data: RunData = None,
    max_images: int = typer.Option(0, "--max-images", help="Use at most N held-out images (0: all)."),
    tflite_python: Optional[str] = typer.Option(None, "--tflite-python", envvar="EDGECLF_TFL_PYTHON",
                                                help="Python of a venv with tflite-runtime and edgeclf: "
                                                "measure that runtime too."),
    keras: bool = typer.Option(True, "--keras/--no-keras", help="Measure agreement with the run's Keras models "
                               "(needs TensorFlow; otherwise the converter's figure is shown)."),
    rss: bool = typer.Option(True, "--rss/--no-rss", help="Measure peak RSS in a separate process per bundle."),
    plot: bool = typer.Option(True, "--plot/--no-plot", help="Draw bench.png (needs matplotlib)."),
) -> None:
    """Benchmark every bundle: size, accuracy, latency, memory, on each installed runtime."""
    from edgeclf.bench.run import BenchConfig, run_bench
    from edgeclf.bench.report import print_table

    cfg = BenchConfig(repeats=repeats, warmup=warmup, frames=frames, threads=tuple(threads or ()),
                      runtimes=tuple(runtime or ()), source=source, run=run, data=data, max_images=max_images,
                      keras=keras, rss=rss, plot=plot, tflite_python=tflite_python or None)
    with progress_bar(settings.show_progress) as progress:
        report, written = run_bench(target, cfg, out, progress)
    print_table(report)
    typer.echo("wrote " + ", ".join(os.fspath(p) for p in written))

