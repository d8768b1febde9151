from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgeclf.bundle import (MANIFEST_FILE, MODEL_FILE, SCHEMA_VERSION, Manifest, TensorSpec, check_tflite_bytes,
                            load_bundle, read_manifest, write_bundle)
from edgeclf.contracts import BundleMetrics, RuntimeVerdict, Source
from edgeclf.errors import BundleError, ModelError
from edgeclf.preprocess import PreprocessSpec

# The smallest real flatbuffer shape a check can look at: root offset + "TFL3" identifier + padding.
FAKE_TFLITE = (16).to_bytes(4, "little") + b"TFL3" + bytes(32)


def make_manifest(**kw) -> Manifest:
    base = dict(labels=("horses", "humans"), task="binary", positive_label="humans",
                preprocess=PreprocessSpec(150, 150), input=TensorSpec("uint8", 1 / 255, 0),
                output=TensorSpec("uint8", 1 / 256, 0), source=Source(run="runs/train-1", arch="seed"),
                metrics=BundleMetrics(accuracy=0.93), runtimes={"ai-edge-litert": RuntimeVerdict(True)})
    base.update(kw)
    return Manifest(**base)


def test_round_trip(tmp_path: Path) -> None:
    m = write_bundle(tmp_path / "b", FAKE_TFLITE, make_manifest())
    assert m.sha256 and m.size_bytes == len(FAKE_TFLITE) and m.created
    back = read_manifest(tmp_path / "b")
    assert back == m
    assert load_bundle(tmp_path / "b" / MODEL_FILE).manifest == m


def test_tampered_model_refused(tmp_path: Path) -> None:
    write_bundle(tmp_path / "b", FAKE_TFLITE, make_manifest())
    (tmp_path / "b" / MODEL_FILE).write_bytes(FAKE_TFLITE + b"x")
    with pytest.raises(BundleError, match="bytes, the manifest says .* changed or damaged"):
        load_bundle(tmp_path / "b")  # another size: refused before it is read
    (tmp_path / "b" / MODEL_FILE).write_bytes(FAKE_TFLITE[:-1] + b"x")
    with pytest.raises(BundleError, match="sha256 .* does not match"):
        load_bundle(tmp_path / "b")


@pytest.mark.parametrize("key", ["labels", "task", "preprocess", "input", "output", "model"])
def test_missing_key_named(tmp_path: Path, key: str) -> None:
    write_bundle(tmp_path / "b", FAKE_TFLITE, make_manifest())
    f = tmp_path / "b" / MANIFEST_FILE
    d = json.loads(f.read_text())
    del d[key]
    f.write_text(json.dumps(d))
    with pytest.raises(BundleError, match=f"missing key '{key}'"):
        read_manifest(tmp_path / "b")


def test_unknown_schema_version(tmp_path: Path) -> None:
    write_bundle(tmp_path / "b", FAKE_TFLITE, make_manifest())
    f = tmp_path / "b" / MANIFEST_FILE
    d = json.loads(f.read_text())
    d["schema_version"] = SCHEMA_VERSION + 1
    f.write_text(json.dumps(d))
    with pytest.raises(BundleError, match=f"schema_version {SCHEMA_VERSION + 1} is not supported"):
        read_manifest(tmp_path / "b")


def test_binary_positive_label_must_be_second() -> None:
    with pytest.raises(BundleError, match="positive_label"):
        make_manifest(positive_label="horses")


@pytest.mark.parametrize("data,what", [
    (b"", "0 bytes"), (b"12345678", "8 bytes"), (b"<!DOCTYPE html><html><body>404</body></html>" * 2, "HTML page"),
    (b"version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 123\n", "Git LFS pointer"),
    (FAKE_TFLITE[:4] + b"TFL3", "not a valid TFLite model")])
def test_not_tflite_says_what_it_is(data: bytes, what: str) -> None:
    with pytest.raises(ModelError, match=what):
        check_tflite_bytes(data, "model.tflite")


def test_rewrite_keeps_old_bundle_on_failure(tmp_path: Path) -> None:
    first = write_bundle(tmp_path / "b", FAKE_TFLITE, make_manifest())
    with pytest.raises(ModelError):
        write_bundle(tmp_path / "b", b"not a model", make_manifest())
    assert load_bundle(tmp_path / "b").manifest == first
    assert [p.name for p in tmp_path.iterdir()] == ["b"]  # no temp folders left behind


def test_bundle_is_readable_by_other_users(tmp_path: Path) -> None:
    """A systemd service on the Pi often runs as another user: bundles are not left 0700/0600 by temp files."""
    import os
    import stat

    old = os.umask(0o022)
    try:
        write_bundle(tmp_path / "b", FAKE_TFLITE, make_manifest())
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "b").stat().st_mode) == 0o755
    for f in (MODEL_FILE, MANIFEST_FILE):
        assert stat.S_IMODE((tmp_path / "b" / f).stat().st_mode) == 0o644
