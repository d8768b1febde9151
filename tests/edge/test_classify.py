"""`edgeclf classify`: the edge pipeline on files answers what the Keras model answers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from edgeclf.cli import app
from edgeclf.edge.model import Classifier
from edgeclf.edge.postprocess import top_k
from edgeclf.imageio import read_bgr

from .conftest import error_lines, run_cli

# The whole edge suite runs again in the tflite-runtime 2.14 venv (scripts/test.sh).
pytestmark = pytest.mark.tflite_runtime

runner = CliRunner()
BUNDLES = ["b32-float32", "b32-int8", "b48-float32", "b48-int8", "rgb32-float32", "rgb32-int8"]
# float32: only the preprocessing differs (<= 1/255 per input value); int8: plus quantization steps.
TOLERANCE = {"float32": 0.01, "int8": 0.05}


@pytest.mark.parametrize("name", BUNDLES)
def test_probabilities_match_keras(bundles, name: str) -> None:
    clf = Classifier.load(bundles.path(name), threads=1)
    expected = bundles.expected[name]
    assert len(expected) >= 3
    tol = TOLERANCE[name.rsplit("-", 1)[1]]
    for image, keras_probs in expected.items():
        probs = clf(read_bgr(bundles.images / image)).copy()
        assert probs.shape == (len(clf.labels),)
        assert np.abs(probs - np.array(keras_probs)).max() <= tol, (image, probs, keras_probs)
        if abs(max(keras_probs) - sorted(keras_probs)[-2]) > 2 * tol:  # a clear answer must be the same answer
            assert int(np.argmax(probs)) == int(np.argmax(keras_probs)), image


def test_cli_json_matches_keras(bundles) -> None:
    name = "b48-int8"
    expected = bundles.expected[name]
    files = [str(bundles.images / f) for f in expected]
    r = runner.invoke(app, ["classify", str(bundles.path(name)), *files, "--json", "--top-k", "2"])
    assert r.exit_code == 0, r.output
    rows = [json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")]
    assert [Path(row["file"]).name for row in rows] == list(expected)
    labels = ["horses", "humans"]
    for row in rows:
        keras = expected[Path(row["file"]).name]
        assert row["probabilities"] == pytest.approx(keras, abs=TOLERANCE["int8"])
        assert row["label"] == labels[int(np.argmax(row["probabilities"]))]
        assert row["score"] == pytest.approx(max(row["probabilities"]), abs=1e-6)
        assert [t[0] for t in row["top"]] == [lab for lab, _ in top_k(np.array(row["probabilities"]), labels, 2)]


def test_cli_text_on_a_folder_and_threshold(bundles, tmp_path: Path) -> None:
    r = runner.invoke(app, ["classify", str(bundles.path("rgb32-float32")), str(bundles.images), "--top-k", "1"])
    assert r.exit_code == 0, r.output
    lines = [ln.split("\t") for ln in r.stdout.splitlines()]
    by_name = {Path(cols[0]).name: cols for cols in lines}
    assert len(by_name) == len(list(bundles.images.glob("*.png"))) + len(list(bundles.images.glob("*.jpg")))
    for colour in ("blue", "green", "red"):
        assert by_name[f"color-{colour}0.png"][1] == colour
    r = runner.invoke(app, ["classify", str(bundles.path("b32-float32")), str(bundles.images / "color-red0.png"),
                            "--threshold", "0.999"])
    assert r.exit_code == 0 and r.stdout.split("\t")[1] == "uncertain"


def test_broken_images_are_listed_and_skipped(bundles, tmp_path: Path) -> None:
    d = tmp_path / "mixed"
    d.mkdir()
    (d / "a-good.png").write_bytes((bundles.images / "color-red0.png").read_bytes())
    (d / "b-empty.jpg").write_bytes(b"")
    (d / "c-text.png").write_text("hello, not a picture")
    good = (bundles.images / "photo.jpg").read_bytes()
    (d / "d-cut.jpg").write_bytes(good[: len(good) // 2])
    r = runner.invoke(app, ["classify", str(bundles.path("rgb32-float32")), str(d)])
    assert r.exit_code == 1
    assert r.stdout.count("\n") == 1 and "a-good.png\tred" in r.stdout
    errs = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    assert len(errs) == 3 and "empty file" in errs[0] and "not an image (text)" in errs[1] and "truncated" in errs[2]
    assert "Traceback" not in r.output


def test_missing_path_is_one_line(bundles, tmp_path: Path) -> None:
    r = run_cli("classify", str(bundles.path("rgb32-float32")), str(tmp_path / "nope.png"))
    assert r.returncode == 1
    assert error_lines(r.stderr) == [f"error: {tmp_path / 'nope.png'}: no such file or folder; expected image files "
                                     "or folders of images"]
    assert r.stdout == ""


def test_bad_flags_refused_before_loading(bundles) -> None:
    r = runner.invoke(app, ["classify", str(bundles.path("rgb32-float32")), str(bundles.images), "--crop", "left"])
    assert r.exit_code == 2 and "--crop 'left'" in r.output
    r = runner.invoke(app, ["classify", str(bundles.path("rgb32-float32")), str(bundles.images), "--threshold", "2"])
    assert r.exit_code == 2 and "--threshold 2" in r.output
