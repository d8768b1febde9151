"""Structural check of a .tflite flatbuffer before any native loader sees it.

tflite-runtime 2.14 does not verify what it is given: a truncated model crashes the process (SIGSEGV) or
makes it allocate until it is killed. The check itself lives with the file format in
`edgeclf.tflite_file.verify` (standard library only, the one reader of .tflite bytes); this is the edge's
name for it. It does not prove a model is sound (the child-process probe in `edgeclf.edge.runtime` covers
the rest); it turns the common damage — a cut-off copy — into one line.
"""

from __future__ import annotations

from edgeclf.tflite_file import SCHEMA_VERSION, verify

__all__ = ["SCHEMA_VERSION", "verify_tflite"]


def verify_tflite(data: bytes, name: str) -> None:
    """Raise ModelError ("not a valid TFLite model (...)") if the flatbuffer's structure is broken."""
    verify(data, name)
