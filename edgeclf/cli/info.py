from __future__ import annotations

import json

import typer

from ._app import command, settings
from .options import Bundle, Runtime


@command("info")
def info(
    bundle: Bundle,
    as_json: bool = typer.Option(False, "--json", help="Print the manifest as JSON."),
    check: bool = typer.Option(False, "--check", help="Also load it on this machine's interpreter, as `camera` "
                                                      "would (flatbuffer check, probe, tensors vs manifest), and run its self-test "
                                                      "sample frames."),
    runtime: Runtime = None,
) -> None:
    """Verify a bundle (schema, sha256) and print its manifest readably."""
    from ..bundle import load_bundle
    from ..safetext import json_line_safe
    from .render import print_manifest

    b = load_bundle(bundle)
    if as_json:
        typer.echo(json_line_safe(json.dumps(b.manifest.to_dict(), indent=2, ensure_ascii=False)))
    else:
        print_manifest(b.path, b.manifest)
    if check:
        from ..edge.model import Classifier
        from ..edge.reload import self_test

        clf = Classifier.load(b.path, runtime, threads=1, quiet=not settings.verbose)
        p = clf.manifest.preprocess
        typer.echo(f"loads here: {clf.runtime.name} {clf.runtime.version}; input {p.width}x{p.height} "
                   f"{clf.manifest.input.dtype}, {len(clf.labels)} labels; tensors match the manifest",
                   err=as_json)
        typer.echo(f"self-test: {self_test(clf)}", err=as_json)  # what `camera` runs before a reload
