"""`edgeclf bench` on a folder with one bad bundle (issue #12, item 15): that bundle is a row that says why,
the others are measured, the run goes on. Real bundles, the real CLI in a child process."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest

from edgeclf.child import module_argv

from .edge.fixtures import get_bundles


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    return get_bundles(tmp_path_factory)


def _bench(target: Path, out: Path) -> "subprocess.CompletedProcess":
    import subprocess

    args = ["bench", str(target), "--no-keras", "--no-rss", "--no-plot", "--repeats", "1", "--warmup", "1",
            "--frames", "2", "--threads", "1", "--runtime", "ai-edge-litert", "--out", str(out)]
    return subprocess.run(module_argv("edgeclf", *args), capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("damage", ["height-float", "tampered-model", "no-model"])
def test_one_bad_bundle_is_a_row_and_the_rest_are_measured(bundles, tmp_path: Path, damage: str) -> None:
    folder = tmp_path / "bundles"
    for name in ("b32-float32", "b32-int8"):
        shutil.copytree(bundles.root / name, folder / name)
    bad = folder / "a-bad"  # sorts first: the bench used to stop at it
    shutil.copytree(bundles.root / "b48-float32", bad)
    if damage == "height-float":
        m = json.loads((bad / "manifest.json").read_text())
        m["preprocess"]["height"] = 48.0
        (bad / "manifest.json").write_text(json.dumps(m))
    elif damage == "tampered-model":
        data = bytearray((bad / "model.tflite").read_bytes())
        data[-1] ^= 0xFF
        (bad / "model.tflite").write_bytes(bytes(data))
    else:
        (bad / "model.tflite").unlink()
    out = _bench(folder, tmp_path / "out")
    assert out.returncode == 0, out.stderr
    assert "Traceback" not in out.stderr
    with open(tmp_path / "out" / "bench.csv", newline="") as fh:
        rows = {r["variant"]: r for r in csv.DictReader(fh)}
    assert set(rows) == {"a-bad", "b32-float32", "b32-int8"}
    assert rows["a-bad"]["status"].startswith("bad bundle: ")
    assert rows["b32-float32"]["status"] == "ok" and rows["b32-int8"]["status"] == "ok"
    assert float(rows["b32-int8"]["p50_ms"]) > 0
    assert "a-bad" in out.stdout and "bad bundle" in out.stdout


def test_a_folder_of_only_bad_bundles_is_one_line(bundles, tmp_path: Path) -> None:
    folder = tmp_path / "bundles"
    shutil.copytree(bundles.root / "b32-float32", folder / "x")
    (folder / "x" / "model.tflite").unlink()
    out = _bench(folder, tmp_path / "out")
    lines = [ln for ln in out.stderr.splitlines() if ln.startswith("error: ")]
    assert out.returncode == 1 and len(lines) == 1 and "model.tflite" in lines[0], out.stderr
