from __future__ import annotations

import json
from pathlib import Path

import typer

from ._app import command


@command("info")
def info(
    bundle: Path = typer.Argument(..., help="Bundle folder (or its manifest.json / model.tflite)."),
    as_json: bool = typer.Option(False, "--json", help="Print the manifest as JSON."),
) -> None:
    """Verify a bundle (schema, sha256) and print its manifest readably."""
    from ..bundle import load_bundle
    from .render import print_manifest

    b = load_bundle(bundle)
    if as_json:
        typer.echo(json.dumps(b.manifest.to_dict(), indent=2, ensure_ascii=False))
    else:
        print_manifest(b.path, b.manifest)
