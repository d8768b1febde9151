"""`edgeclf convert RUN --quantize`: parse options, call `edgeclf.convert.convert_run`, print the summary.

`--quantize` takes a value (repeatable) and may also be given bare, meaning int8. The parser cannot say
that: the click that typer 0.29 vendors has no optional option values (an option either takes a value or
is a flag; tests/test_convert.py checks this), and even click 8's `is_flag=False, flag_value=...` would
take RUN in `--quantize RUN` as the kind. So the command class (not sys.argv) inserts `int8` after a
`--quantize` that has no kind after it, before click parses the list. A following token counts as a kind
unless it is an existing path or looks like one (RUN after a bare flag), so a misspelt kind
(`--quantize in8`) still reaches the kind check and gets a clear error.
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path
from typing import Any, Iterator, List, Optional

import typer
from typer.core import TyperCommand

from ..bundle import BINARY_OUTPUTS, DEFAULT_BINARY_OUTPUT
from ._app import command, settings
from .progress import progress_bar
from .options import RunData

QUANTIZE = "--quantize"
BARE_QUANTIZE = "int8"
_KINDS = ("float32", "float16", "dynamic", "int8")  # edgeclf.convert.KINDS, without importing it at start-up


def expand_bare_quantize(args: list[str]) -> list[str]:
    """Insert `int8` after every `--quantize` that has no kind after it."""
    out: list[str] = []
    for i, arg in enumerate(args):
        if arg == "--":
            return out + args[i:]
        out.append(arg)
        if arg != QUANTIZE:
            continue
        nxt = args[i + 1] if i + 1 < len(args) else None
        if nxt is None or nxt.startswith("-") or _looks_like_path(nxt):
            out.append(BARE_QUANTIZE)
    return out


def _looks_like_path(token: str) -> bool:
    if token.lower() in _KINDS:
        return False
    return os.sep in token or "/" in token or Path(token).exists()


class QuantizeCommand(TyperCommand):
    """A typer command whose `--quantize` may be given without a value."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        return super().parse_args(ctx, expand_bare_quantize(list(args)))


@contextlib.contextmanager
def _progress_bar() -> Iterator[Any]:
    """A rich progress bar on a duplicate of stderr (the converter's quiet mode redirects fd 2), or None."""
    if not settings.show_progress:
        yield None
        return
    stream = os.fdopen(os.dup(2), "w")
    noisy = logging.getLogger("edgeclf.convert")
    level = noisy.level
    noisy.setLevel(logging.WARNING)  # the bar says what each variant did; the log lines would tear it
    try:
        with progress_bar(True, stream, transient=False) as update:
            yield update
    finally:
        noisy.setLevel(level)
        stream.close()


@command("convert", cls=QuantizeCommand)
def convert(
    run: Path = typer.Argument(..., help="Run directory written by `edgeclf train`."),
    quantize: Optional[List[str]] = typer.Option(
        None, QUANTIZE, metavar="KIND",
        help="float32, float16, dynamic or int8 (full integer); repeat for several; given alone it means int8. "
             "Default: float32."),
    io_dtype: Optional[str] = typer.Option(
        None, "--io-dtype", metavar="DTYPE",
        help="Input/output dtype of int8 models: uint8 (default; Coral/EdgeTPU), int8 (microcontrollers) or "
             "float32."),
    calibration: int = typer.Option(300, "--calibration", metavar="N",
                                    help="Training images (stratified over classes) that calibrate int8."),
    size: Optional[List[int]] = typer.Option(None, "--size", metavar="N",
                                             help="Input size to convert; repeat for several (default: every size "
                                                  "the run trained)."),
    data: RunData = None,
    max_drop: float = typer.Option(1.0, "--max-drop", metavar="PP",
                                   help="Reject a variant that loses more than this many percentage points of "
                                        "held-out accuracy against the Keras model (negative: demand a gain)."),
    allow_drop: bool = typer.Option(False, "--allow-drop",
                                    help="Write variants over --max-drop anyway and exit 0."),
    out: Optional[Path] = typer.Option(None, "--out", metavar="DIR",
                                       help="Folder for the bundles (default: RUN/bundles)."),
    runtime: str = typer.Option("ai-edge-litert", "--runtime",
                                help="Runtime the bundles are for: ai-edge-litert or tflite-runtime (then the "
                                     "variants tflite-runtime 2.14 cannot load are named, with what to pick)."),
    metadata: bool = typer.Option(True, "--metadata/--no-metadata",
                                  help="Write standard TFLite metadata (name, input normalization, labels) into "
                                       "every variant, for MediaPipe Tasks and Android (docs/ecosystem.md)."),
    binary_output: str = typer.Option(DEFAULT_BINARY_OUTPUT, "--binary-output", metavar="KIND",
                                      help=f"A binary model's output: {' or '.join(BINARY_OUTPUTS)} "
                                           "(two-class: [1-p, p], so other runtimes name both labels)."),
    feature_distance: bool = typer.Option(True, "--feature-distance/--no-feature-distance",
                                          help="Add a second output, the distance of the features to the training "
                                               "classes, and answer unknown far from them (docs/unknown.md)."),
) -> None:
    """Export verified (quantized) TFLite bundles at 300 and 150 input from a training run."""
    from rich.console import Console

    from ..convert import ConvertConfig, convert_run, kinds_from_names
    from ..convert.report import summary_table, tflite_runtime_advice
    from ..errors import EdgeclfError

    config = ConvertConfig(kinds=kinds_from_names(quantize or [], io_dtype, calibration), sizes=tuple(size or ()),
                           data=data, max_drop=max_drop, allow_drop=allow_drop, out=out, runtime=runtime,
                           quiet=settings.verbose == 0, metadata=metadata, binary_output=binary_output,
                           feature_distance=feature_distance)
    with _progress_bar() as progress:
        result = convert_run(run, config, progress)
    console = Console(width=None if settings.show_progress else 150)
    console.print(summary_table(result.results, f"edgeclf convert {run}: max drop {max_drop:g} pp"))
    written = [r for r in result.results if r.path is not None]
    from ..metrics import Interval

    for r in result.results:
        if r.test and not r.rejected:
            typer.echo(f"{r.name}: test accuracy {Interval.from_dict(r.test).text()}")
    typer.echo(f"{len(written)} bundle(s) in {result.out}; table in {result.variants_json}; plot {result.plot}")
    if runtime == "tflite-runtime":
        advice = tflite_runtime_advice(result.results)
        for line in advice:
            typer.echo(f"warning: {line}", err=True)
        if not advice:
            typer.echo("every variant loads on tflite-runtime 2.14")
    if result.rejected:
        names = ", ".join(f"{r.name} ({r.metrics.delta_pp:+.2f} pp)" for r in result.rejected)
        raise EdgeclfError(f"{len(result.rejected)} variant(s) failed the accuracy gate (at most {max_drop:g} pp below "
                           f"the Keras model, --max-drop) and were not written: {names}; keep them anyway with "
                           "--allow-drop, or pick another quantization")
