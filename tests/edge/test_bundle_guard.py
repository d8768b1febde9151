"""Damaged or inconsistent bundles are refused with one line, before or without crashing the caller
(reliability cases 1-4)."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any, Callable

import pytest
from typer.testing import CliRunner

from edgeclf.bundle import load_bundle
from edgeclf.cli import app
from edgeclf.edge.flatbuf import verify_tflite
from edgeclf.edge.model import Classifier
from edgeclf.edge.runtime import find_runtime, manifest_key, probe_model
from edgeclf.errors import BundleError, ModelError

# The whole edge suite runs again in the tflite-runtime 2.14 venv (scripts/test.sh).
pytestmark = pytest.mark.tflite_runtime

runner = CliRunner()


def _copy(bundles, name: str, dst: Path) -> Path:
    shutil.copytree(bundles.path(name), dst)
    return dst


def _edit_manifest(bundle: Path, edit: Callable[[dict[str, Any]], None]) -> None:
    f = bundle / "manifest.json"
    d = json.loads(f.read_text())
    edit(d)
    f.write_text(json.dumps(d))


def _replace_model(bundle: Path, data: bytes) -> None:
    """New model bytes with a matching sha256, so the content checks (not the digest) must catch them."""
    (bundle / "model.tflite").write_bytes(data)

    def fix(d: dict[str, Any]) -> None:
        d["model"]["sha256"] = hashlib.sha256(data).hexdigest()
        d["model"]["size_bytes"] = len(data)

    _edit_manifest(bundle, fix)


def _one_error(bundle: Path, images: Path, *extra: str) -> str:
    r = runner.invoke(app, ["classify", str(bundle), str(images / "photo.jpg"), *extra])
    assert r.exit_code != 0
    assert "Traceback" not in r.output
    errs = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(errs) == 1 and errs[0].startswith("error: "), r.stderr
    assert r.stdout == ""
    return errs[0]


def test_tampered_model_refused_before_the_interpreter(bundles, tmp_path: Path, monkeypatch) -> None:
    b = _copy(bundles, "b32-int8", tmp_path / "b")
    data = bytearray((b / "model.tflite").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (b / "model.tflite").write_bytes(bytes(data))
    rt = find_runtime()
    calls = []
    monkeypatch.setattr(rt.interpreter_class, "__init__", lambda *a, **k: calls.append(a))
    line = _one_error(b, bundles.images)
    assert "sha256" in line and "does not match the manifest" in line and "re-copy" in line
    assert calls == []


@pytest.mark.parametrize("kind", ["zero", "eight", "half", "most", "html", "lfs"])
def test_not_a_model_says_what_it_is(bundles, tmp_path: Path, kind: str) -> None:
    b = _copy(bundles, "b32-int8", tmp_path / "b")
    good = (b / "model.tflite").read_bytes()
    data = {
        "zero": b"",
        "eight": good[:8],
        "half": good[: len(good) // 2],
        "most": good[: len(good) - 40],
        "html": b"<!DOCTYPE html>\n<html><head><title>404 Not Found</title></head><body>Not Found</body></html>\n",
        "lfs": b"version https://git-lfs.github.com/spec/v1\noid sha256:" + b"a" * 64 + b"\nsize 21560\n",
    }[kind]
    _replace_model(b, data)
    line = _one_error(b, bundles.images)
    assert "not a valid TFLite model" in line and "model.tflite" in line
    if kind == "html":
        assert "an HTML page" in line
    if kind == "lfs":
        assert "a Git LFS pointer" in line and "git lfs pull" in line
    if kind in ("half", "most"):
        assert "truncated" in line


def test_every_truncation_is_refused_in_process(bundles) -> None:
    """A cut-off copy never reaches the native loader (tflite-runtime 2.14 segfaults on many of them)."""
    data = (bundles.path("b48-int8") / "model.tflite").read_bytes()
    verify_tflite(data, "model.tflite")
    for n in range(16, len(data), 97):
        with pytest.raises(ModelError, match="not a valid TFLite model"):
            verify_tflite(data[:n], "model.tflite")


def test_child_probe_survives_what_the_loader_does_not(bundles) -> None:
    """Bytes the structural check would refuse, given straight to the child probe: it fails (ai-edge-litert
    raises, tflite-runtime 2.14 segfaults), this process lives on and gets one ModelError."""
    data = (bundles.path("b48-int8") / "model.tflite").read_bytes()
    rt = find_runtime()
    for cut in (3, 5, 7):
        with pytest.raises(ModelError, match=r"not a valid TFLite model|cannot load it"):
            probe_model(data[: len(data) * cut // 10], "", rt, "model.tflite")


def test_probe_runs_once_per_model(bundles, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("EDGECLF_CACHE", str(tmp_path / "cache"))
    b = load_bundle(bundles.path("rgb32-int8"))
    rt = find_runtime()
    assert probe_model(b.model_bytes, b.manifest.sha256, rt, "m") is True
    assert probe_model(b.model_bytes, b.manifest.sha256, rt, "m") is False
    assert len(list((tmp_path / "cache" / "probed").iterdir())) == 1


@pytest.mark.parametrize("field,edit,says", [
    ("preprocess.height", lambda d: d["preprocess"].update(height=48), "preprocess.height 48 disagrees"),
    ("preprocess.width", lambda d: d["preprocess"].update(width=31), "preprocess.width 31 disagrees"),
    ("input.dtype", lambda d: d["input"].update(dtype="float32", scale=0.0), "input.dtype 'float32' disagrees"),
    ("input.scale", lambda d: d["input"].update(scale=0.5), "input.scale 0.5 disagrees"),
    ("output.zero_point", lambda d: d["output"].update(zero_point=3), "output.zero_point 3 disagrees"),
    ("labels", lambda d: d.update(labels=["a", "b", "c"], task="multiclass", positive_label=None),
     "labels (3, task 'multiclass') expect 3 output"),
])
def test_manifest_disagreeing_with_the_model_is_refused(bundles, tmp_path: Path, field: str, edit, says: str) -> None:
    b = _copy(bundles, "b32-int8", tmp_path / "b")
    _edit_manifest(b, edit)
    with pytest.raises(BundleError, match=field.replace(".", r"\.")):
        Classifier.load(b, threads=1)
    assert says in _one_error(b, bundles.images)


@pytest.mark.parametrize("edit,says", [
    (lambda d: d.pop("preprocess"), "missing key 'preprocess'"),
    (lambda d: d["model"].pop("sha256"), "missing key 'model.sha256'"),
    (lambda d: d.update(schema_version=7), "schema_version 7 is not supported"),
    (lambda d: d["input"].update(dtype="int4"), "input.dtype: 'int4' is not supported"),
])
def test_broken_manifest_names_the_field(bundles, tmp_path: Path, edit, says: str) -> None:
    b = _copy(bundles, "rgb32-float32", tmp_path / "b")
    _edit_manifest(b, edit)
    assert says in _one_error(b, bundles.images)


def test_manifest_verdict_for_this_runtime_is_respected(bundles, tmp_path: Path) -> None:
    b = _copy(bundles, "rgb32-float32", tmp_path / "b")
    key = manifest_key(find_runtime())
    _edit_manifest(b, lambda d: d["runtimes"].update({key: {"loads": False, "why": "needs FULLY_CONNECTED v12"}}))
    line = _one_error(b, bundles.images)
    assert f"{key} cannot load this variant (needs FULLY_CONNECTED v12)" in line


def test_camera_refuses_a_damaged_bundle_too(bundles, tmp_path: Path, clip: Path) -> None:
    b = _copy(bundles, "b32-int8", tmp_path / "b")
    _replace_model(b, (b / "model.tflite").read_bytes()[:5000])
    r = runner.invoke(app, ["camera", str(b), "--source", str(clip)])
    assert r.exit_code == 1 and "not a valid TFLite model" in r.stderr and r.stdout == ""


def test_info_check_loads_it_here(bundles, tmp_path: Path) -> None:
    r = runner.invoke(app, ["info", str(bundles.path("b48-int8")), "--check"])
    assert r.exit_code == 0 and "loads here: " in r.stdout and "input 48x48 uint8" in r.stdout
    b = _copy(bundles, "b48-int8", tmp_path / "b")
    _edit_manifest(b, lambda d: d["preprocess"].update(width=96))
    r = runner.invoke(app, ["info", str(b), "--check"])
    assert r.exit_code == 1 and "preprocess.width 96 disagrees" in r.stderr
