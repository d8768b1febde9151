"""The bundle: the one contract between train, convert and edge.

A bundle is a folder holding `model.tflite` and `manifest.json`. The manifest (schema
`edgeclf.bundle`, version 2; version 1, without `calibration`, is still read) says everything the edge needs to feed the model and read its answer:
labels in output order, task, the preprocessing spec, input/output dtype and quantization, the sha256 of
the model file, where it came from, what it measured at conversion, which runtimes load it and, when
`convert` fitted one, the calibration and "unknown" rule (`edgeclf.calibration`).

This module reads, writes and validates bundles. It imports nothing heavier than the standard library.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping

from . import __version__, tflite_file
from .atomic import atomic_dir
from .calibration import Calibration
from .contracts import BundleMetrics, RuntimeVerdict, Source, runtimes_from_dict
from .errors import BundleError
from .samples import SAMPLES_DIR, SampleSet
from .preprocess import PreprocessSpec, field_int, field_mapping, field_number, field_str
from .sha256 import sha256

SCHEMA = "edgeclf.bundle"
SCHEMA_VERSION = 2
READABLE_VERSIONS = (1, 2)  # 1: no calibration record
MODEL_FILE = "model.tflite"
MANIFEST_FILE = "manifest.json"
TASKS = ("binary", "multiclass")
DTYPES = ("float32", "float16", "uint8", "int8")
RUNTIMES = ("ai-edge-litert", "tflite-runtime-2.14")
QUANT_RANGE = {"uint8": (0, 255), "int8": (-128, 127)}
# A binary model's output: one sigmoid P(labels[1]), or two probabilities [1 - p, p] (`edgeclf convert
# --binary-output`, edgeclf.convert.binary_output). A manifest without the field means sigmoid.
BINARY_OUTPUTS = ("two-class", "sigmoid")
DEFAULT_BINARY_OUTPUT = "two-class"


@dataclass(frozen=True)
class TensorSpec:
    """A model input or output: dtype and the affine quantization (real = scale * (q - zero_point))."""

    dtype: str = "float32"
    scale: float = 0.0
    zero_point: int = 0

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise BundleError(f"manifest: tensor dtype {self.dtype!r} is not supported; expected one of {DTYPES}")
        if self.dtype in ("uint8", "int8"):
            if not (isinstance(self.scale, (int, float)) and math.isfinite(self.scale) and self.scale > 0):
                raise BundleError(f"manifest: {self.dtype} tensor needs a positive quantization scale, got {self.scale}")
            lo, hi = QUANT_RANGE[self.dtype]
            if not lo <= self.zero_point <= hi:
                raise BundleError(f"manifest: {self.dtype} tensor zero_point {self.zero_point} is outside {lo}..{hi}")

    @property
    def quantized(self) -> bool:
        return self.dtype in ("uint8", "int8")


@dataclass(frozen=True)
class Manifest:
    labels: tuple[str, ...]
    task: str
    preprocess: PreprocessSpec
    input: TensorSpec
    output: TensorSpec
    sha256: str = ""
    size_bytes: int = 0
    positive_label: str | None = None
    binary_output: str = "sigmoid"  # binary tasks: "sigmoid" (one output) or "two-class" ([1 - p, p])
    source: Source = field(default_factory=Source)  # run, arch, size, quantization, io_dtype (edgeclf.contracts)
    metrics: BundleMetrics = field(default_factory=BundleMetrics)
    runtimes: Mapping[str, RuntimeVerdict] = field(default_factory=dict)  # runtime name -> verdict
    created: str = ""
    edgeclf_version: str = __version__
    calibration: Calibration | None = None  # None: scores as the model gives them, no "unknown"
    samples: SampleSet | None = None  # self-test frames in samples/ (edgeclf.samples); None: made before them

    def __post_init__(self) -> None:
        if not (isinstance(self.source, Source) and isinstance(self.metrics, BundleMetrics)
                and all(isinstance(v, RuntimeVerdict) for v in self.runtimes.values())):
            raise TypeError("Manifest: source, metrics and runtimes take edgeclf.contracts types, not mappings")
        if self.task not in TASKS:
            raise BundleError(f"manifest: task {self.task!r} is not supported; expected one of {TASKS}")
        if len(self.labels) < 2 or len(set(self.labels)) != len(self.labels):
            raise BundleError(f"manifest: labels {list(self.labels)} must be at least two distinct names")
        if self.task == "binary":
            if len(self.labels) != 2:
                raise BundleError(f"manifest: a binary task has exactly 2 labels, got {len(self.labels)}")
            if self.binary_output not in BINARY_OUTPUTS:
                raise BundleError(f"manifest: binary_output {self.binary_output!r} is not supported; expected one "
                                  f"of {', '.join(BINARY_OUTPUTS)}")
            if self.positive_label != self.labels[1]:
                raise BundleError(f"manifest: positive_label {self.positive_label!r} must be the second label "
                                  f"{self.labels[1]!r} (the sigmoid's 1)")

    @property
    def num_outputs(self) -> int:
        return 1 if self.task == "binary" and self.binary_output == "sigmoid" else len(self.labels)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "schema_version": SCHEMA_VERSION,
            "labels": list(self.labels),
            "task": self.task,
            "positive_label": self.positive_label,
            "binary_output": self.binary_output if self.task == "binary" else None,
            "preprocess": self.preprocess.to_dict(),
            "input": _tensor_dict(self.input),
            "output": _tensor_dict(self.output),
            "model": {"file": MODEL_FILE, "sha256": self.sha256, "size_bytes": self.size_bytes},
            "source": self.source.to_dict(),
            "metrics": self.metrics.to_dict(),
            "runtimes": {k: v.to_dict() for k, v in self.runtimes.items()},
            "created": self.created,
            "edgeclf_version": self.edgeclf_version,
            **({"calibration": self.calibration.to_dict()} if self.calibration is not None else {}),
            **({"samples": self.samples.to_dict()} if self.samples is not None else {}),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str = MANIFEST_FILE) -> "Manifest":
        if not isinstance(d, Mapping):
            raise BundleError(f"{where}: expected a JSON object, got {type(d).__name__}")
        if d.get("schema") != SCHEMA:
            raise BundleError(f"{where}: schema {d.get('schema')!r} is not {SCHEMA!r}; this is not an edgeclf bundle")
        version = d.get("schema_version")
        if type(version) is not int or version not in READABLE_VERSIONS:
            raise BundleError(f"{where}: schema_version {version!r} is not supported (this edgeclf reads "
                              f"{' and '.join(map(str, READABLE_VERSIONS))}); re-convert the model or upgrade edgeclf")
        for key in ("labels", "task", "preprocess", "input", "output", "model"):
            if key not in d:
                raise BundleError(f"{where}: missing key {key!r}; re-convert the model with `edgeclf convert`")
        try:
            model = field_mapping(d["model"], f"{where}: model")
            for key in ("sha256", "size_bytes"):
                if key not in model:
                    raise BundleError(f"{where}: missing key 'model.{key}'")
            return cls(
                labels=_labels(d["labels"], f"{where}: labels"),
                task=field_str(d["task"], f"{where}: task", TASKS),
                positive_label=None if d.get("positive_label") is None else field_str(
                    d["positive_label"], f"{where}: positive_label"),
                binary_output=field_str(d.get("binary_output") or "sigmoid", f"{where}: binary_output",
                                        BINARY_OUTPUTS),
                preprocess=PreprocessSpec.from_dict(d["preprocess"], f"{where}: preprocess"),
                input=_tensor_from(d["input"], f"{where}: input"),
                output=_tensor_from(d["output"], f"{where}: output"),
                sha256=_sha256(model["sha256"], f"{where}: model.sha256"),
                size_bytes=field_int(model["size_bytes"], f"{where}: model.size_bytes", 0),
                source=Source.from_dict(d.get("source", {}), f"{where}: source"),
                metrics=BundleMetrics.from_dict(d.get("metrics", {}), f"{where}: metrics"),
                runtimes=runtimes_from_dict(d.get("runtimes", {}), f"{where}: runtimes"),
                created=field_str(d.get("created", ""), f"{where}: created"),
                edgeclf_version=field_str(d.get("edgeclf_version", ""), f"{where}: edgeclf_version"),
                calibration=Calibration.from_dict(d["calibration"], f"{where}: calibration")
                if version >= 2 and d.get("calibration") is not None else None,
                samples=None if d.get("samples") is None else SampleSet.from_dict(
                    d["samples"], f"{where}: samples", len(d["labels"]) if isinstance(d["labels"], list) else 0),
            )
        except (TypeError, ValueError) as e:
            raise BundleError(f"{where}: malformed value ({e}); re-convert the model with `edgeclf convert`") from None
        except BundleError as e:
            msg = str(e)
            raise BundleError(msg if "edgeclf convert" in msg else f"{msg}; re-convert the model with "
                              "`edgeclf convert`") from None


def _labels(value: Any, where: str) -> tuple[str, ...]:
    """A JSON list of non-empty strings ("ab" is not two labels)."""
    if not isinstance(value, list):
        raise BundleError(f"{where}: expected a list of label names, got {type(value).__name__}")
    return tuple(field_str(x, f"{where}[{i}]") for i, x in enumerate(value))


def _sha256(value: Any, where: str) -> str:
    v = field_str(value, where)
    if len(v) != 64 or any(c not in "0123456789abcdef" for c in v):
        raise BundleError(f"{where}: expected 64 lowercase hex digits")
    return v


def _tensor_dict(t: TensorSpec) -> dict[str, Any]:
    return {"dtype": t.dtype, "scale": t.scale, "zero_point": t.zero_point}


def _tensor_from(d: Mapping[str, Any], where: str) -> TensorSpec:
    field_mapping(d, where)
    if "dtype" not in d:
        raise BundleError(f"{where}: missing key 'dtype'")
    dtype = field_str(d["dtype"], f"{where}.dtype", DTYPES)
    quantized = dtype in QUANT_RANGE
    scale = field_number(d.get("scale", 0.0), f"{where}.scale", positive=quantized)
    lo, hi = QUANT_RANGE.get(dtype, (None, None))
    zero_point = field_int(d.get("zero_point", 0), f"{where}.zero_point", lo, hi)
    return TensorSpec(dtype=dtype, scale=scale, zero_point=zero_point)


def sha256_bytes(data: bytes) -> str:
    return sha256(data).hexdigest()


def check_tflite_bytes(data: bytes, name: str) -> None:
    """Refuse bytes that are not a TFLite flatbuffer, saying what they are instead (`edgeclf.tflite_file`)."""
    tflite_file.check_header(data, name)


def resolve_bundle_dir(path: str | os.PathLike[str]) -> Path:
    """Accept the bundle folder, its manifest.json or its model.tflite."""
    p = Path(path)
    if p.is_file() and p.name in (MANIFEST_FILE, MODEL_FILE):
        p = p.parent
    if not p.exists():
        raise BundleError(f"{p}: no such bundle; expected a folder with {MODEL_FILE} and {MANIFEST_FILE} "
                          "(made by `edgeclf convert`)")
    if not p.is_dir():
        raise BundleError(f"{p}: is a file; a bundle is a folder with {MODEL_FILE} and {MANIFEST_FILE}")
    return p


MAX_MANIFEST_BYTES = 4 * 1024**2  # a 1000-label manifest is ~30 KB
MAX_MODEL_BYTES = 2 * 1024**3  # a TFLite flatbuffer cannot be larger


def read_regular_file(path: Path, max_bytes: int, expected_size: int | None = None) -> bytes:
    """The bytes of `path` when it is a regular file (a symlink to one is followed) of at most `max_bytes`.

    A FIFO, a device (/dev/zero), a socket or a folder is refused before anything is read, and so is a file
    over the cap or, when `expected_size` is given, of another size: nothing is read without bound and
    nothing blocks. FileNotFoundError passes through for the caller's own message.
    """
    import stat

    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise
    except OSError as e:
        raise BundleError(f"{path}: cannot be read ({e.strerror}); check the bundle's files and permissions") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            kinds = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
                     (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))
            kind = next((name for test, name in kinds if test(st.st_mode)), "not a regular file")
            raise BundleError(f"{path}: is {kind}, not a regular file; re-copy the bundle folder")
        if st.st_size > max_bytes:
            raise BundleError(f"{path}: {st.st_size:,} bytes is over the cap of {max_bytes:,}; this is not a bundle "
                              "file made by `edgeclf convert`; re-copy the bundle")
        if expected_size is not None and st.st_size != expected_size:
            raise BundleError(f"{path}: {st.st_size:,} bytes, the manifest says {expected_size:,}; the model was "
                              "changed or damaged; re-copy the bundle or re-convert")
        chunks, total = [], 0
        while total <= max_bytes:  # a file that grows while read is still capped
            chunk = os.read(fd, min(1 << 20, max_bytes + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
        if total > max_bytes:
            raise BundleError(f"{path}: grew past the cap of {max_bytes:,} bytes while being read; re-copy the bundle")
        return b"".join(chunks)
    finally:
        os.close(fd)


def read_manifest(path: str | os.PathLike[str]) -> Manifest:
    d = resolve_bundle_dir(path)
    mpath = d / MANIFEST_FILE
    try:
        raw = json.loads(read_regular_file(mpath, MAX_MANIFEST_BYTES).decode("utf-8"))
    except FileNotFoundError:
        raise BundleError(f"{d}: no {MANIFEST_FILE}; expected a bundle made by `edgeclf convert`") from None
    except RecursionError:
        raise BundleError(f"{mpath}: not a bundle manifest (JSON nested too deeply to read); re-copy the bundle "
                          "or re-convert") from None
    except (ValueError, UnicodeDecodeError) as e:  # JSONDecodeError is a ValueError
        raise BundleError(f"{mpath}: not valid JSON ({e}); re-copy the bundle") from None
    return Manifest.from_dict(raw, str(mpath))


@dataclass(frozen=True)
class Bundle:
    path: Path
    manifest: Manifest
    model_bytes: bytes


def load_bundle(path: str | os.PathLike[str]) -> Bundle:
    """Read and verify a bundle: manifest schema, model present, sha256 and TFLite identifier.

    Nothing reaches an interpreter before these checks pass.
    """
    d = resolve_bundle_dir(path)
    manifest = read_manifest(d)
    mpath = d / MODEL_FILE
    try:
        data = read_regular_file(mpath, MAX_MODEL_BYTES, manifest.size_bytes or None)
    except FileNotFoundError:
        raise BundleError(f"{d}: no {MODEL_FILE}; re-copy the whole bundle folder") from None
    digest = sha256_bytes(data)
    if digest != manifest.sha256:
        raise BundleError(f"{mpath}: sha256 {digest[:12]}… does not match the manifest's {manifest.sha256[:12]}…; "
                          "the model was changed or damaged; re-copy the bundle or re-convert")
    check_tflite_bytes(data, str(mpath))
    return Bundle(d, manifest, data)


def write_bundle(path: str | os.PathLike[str], model_bytes: bytes, manifest: Manifest,
                 sample_files: Mapping[str, bytes] | None = None) -> Manifest:
    """Write model + manifest (sha256, size and time filled in) atomically: the old bundle stays until done.

    `sample_files`: the bytes of each file `manifest.samples` lists (edgeclf.samples), checked against it.
    """
    check_tflite_bytes(model_bytes, "model")
    listed = {s.file: s.sha256 for s in manifest.samples.items} if manifest.samples is not None else {}
    given = dict(sample_files or {})
    if set(listed) != set(given) or any(sha256_bytes(given[f]) != sha for f, sha in listed.items()):
        raise BundleError("write_bundle: the sample files given do not match manifest.samples")
    final = replace(manifest, sha256=sha256_bytes(model_bytes), size_bytes=len(model_bytes),
                    created=manifest.created or datetime.now(timezone.utc).isoformat(timespec="seconds"))
    with atomic_dir(path) as tmp:
        (tmp / MODEL_FILE).write_bytes(model_bytes)
        (tmp / MANIFEST_FILE).write_text(json.dumps(final.to_dict(), indent=2, ensure_ascii=False) + "\n", "utf-8")
        if given:
            (tmp / SAMPLES_DIR).mkdir()
        for name, data in given.items():
            (tmp / name).write_bytes(data)
        for f in (MODEL_FILE, MANIFEST_FILE, *given):
            with open(tmp / f, "rb") as fh:
                os.fsync(fh.fileno())
    return final
