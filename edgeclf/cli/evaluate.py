"""`edgeclf eval MODEL_OR_BUNDLE DATA_DIR`: parse options, call `edgeclf.evaluate.run.run_eval`, print."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from ._app import command, settings
from .progress import progress_bar
from .edge import Crop, Runtime, Threads

try:
    from typing import Annotated
except ImportError:  # pragma: no cover
    from typing_extensions import Annotated


@command("eval")
def eval_(
    target: Annotated[Path, typer.Argument(help="A bundle folder, a run directory (its Keras model) or a .keras file.")],
    data_dir: Annotated[Path, typer.Argument(help="Test images: one sub-folder per class, named as the labels.")],
    camera_sim: Annotated[bool, typer.Option("--camera-sim", help="Score camera-like frames of the images (subject "
                                             "45-100 % of a 4:3 frame, anywhere, on a background, light and "
                                             "sensor changes) instead of the files.")] = False,
    frames_per_image: Annotated[int, typer.Option("--frames-per-image", help="Camera-sim frames per image.")] = 1,
    seed: Annotated[int, typer.Option("--seed", help="Camera-sim and bootstrap seed.")] = 0,
    video: Annotated[Optional[Path], typer.Option("--video", help="Also write the camera-sim frames to this .avi "
                                                  "(+ .labels.json), for `edgeclf camera --source`.")] = None,
    size: Annotated[Optional[int], typer.Option("--size", help="Which of a run's models (default: the smallest).")] = None,
    group_pattern: Annotated[Optional[str], typer.Option("--group-pattern", help="Regex on the file stem naming "
                                                         "the subject, for the interval.")] = None,
    out: Annotated[Optional[Path], typer.Option("--out", help="Write eval.json, predictions.csv, confusion.png "
                                                "and reliability.png here.")] = None,
    worst: Annotated[int, typer.Option("--worst", help="List this many most confident mistakes.")] = 10,
    crop: Crop = None,
    threads: Threads = None,
    runtime: Runtime = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as one JSON object.")] = False,
) -> None:
    """Measure a bundle or a run's model on a test folder: top-1 with its interval, per class, calibration."""
    from ..evaluate.run import EvalConfig, run_eval

    kw = {"group_pattern": group_pattern} if group_pattern else {}
    cfg = EvalConfig(str(target), str(data_dir), size, camera_sim, frames_per_image, seed, crop, runtime, threads,
                     video=str(video) if video else None, worst=worst, **kw)
    with progress_bar(settings.show_progress) as progress:
        report = run_eval(cfg, progress)
    if out is not None:
        from ..evaluate.report import write_outputs

        write_outputs(report, out)
    if as_json:
        typer.echo(json.dumps(report.to_dict(), ensure_ascii=False))
        return
    from ..evaluate.report import summary_lines

    for line in summary_lines(report):
        typer.echo(line)
