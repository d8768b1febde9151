"""Bundles other runtimes understand (#17): standard TFLite metadata, MediaPipe Tasks, `--binary-output`.

A tiny model trained on real horse-or-human photos (a few subjects per class, copied at the model's input
size so that no runtime resizes or crops them), converted by `edgeclf convert` (float32 and int8), then read
by MediaPipe's `ImageClassifier` (the metadata and the model, nothing from edgeclf), by MediaPipe's
metadata reader, and by `edgeclf classify`.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from edgeclf.bundle import load_bundle
from edgeclf.cli import app
from edgeclf.tflite_ops import tflite_runtime_214_verdict

from .runfixture import make_run

SIZE = 48
CLASSES = ("horses", "humans")
SUBJECTS, PER_SUBJECT = 8, 3
runner = CliRunner()


def _small_copy(shared: Path, dest: Path) -> Path:
    """PER_SUBJECT photos of each of SUBJECTS subjects per class, resized to SIZE, named <class>NN-k.png."""
    for name in CLASSES:
        (dest / name).mkdir(parents=True)
        by_subject: dict[int, list[Path]] = {}
        for f in sorted((shared / name).glob("*.png")):
            by_subject.setdefault(int(re.match(r"[a-z]+(\d+)-", f.name).group(1)), []).append(f)
        for subject in sorted(by_subject)[:SUBJECTS]:
            for k, f in enumerate(by_subject[subject][:PER_SUBJECT]):
                img = cv2.imread(str(f), cv2.IMREAD_COLOR)
                small = cv2.resize(img, (SIZE, SIZE), interpolation=cv2.INTER_AREA)
                cv2.imwrite(str(dest / name / f"{name}{subject:02d}-{k}.png"), small)
    return dest


def _convert(run: Path, out: Path, *extra: str) -> None:
    r = runner.invoke(app, ["-q", "convert", str(run), "--quantize", "float32", "--quantize", "int8",
                            "--calibration", "32", "--allow-drop", "--out", str(out), *extra])
    assert r.exit_code == 0, r.output


@pytest.fixture(scope="module")
def hoh(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> dict[str, Path]:
    """The run, its photos, and bundles: default (two-class, metadata), sigmoid, and two-class without metadata."""
    root = tmp_path_factory.mktemp("ecosystem")
    data = _small_copy(shared_data, root / "data")
    run = make_run(root, CLASSES, (SIZE,), epochs=15, data=data)
    _convert(run, root / "default")
    _convert(run, root / "sigmoid", "--binary-output", "sigmoid")
    _convert(run, root / "bare", "--no-metadata")
    return {"run": run, "data": data, "default": root / "default", "sigmoid": root / "sigmoid", "bare": root / "bare"}


def _photos(data: Path) -> list[Path]:
    return sorted(data.glob("*/*.png"))


def _mediapipe(model: Path, images: list[Path]) -> list[list[tuple[str | None, float]]]:
    """MediaPipe Tasks' ImageClassifier on each image: every category, best first."""
    import mediapipe as mp
    from mediapipe.tasks.python import BaseOptions, vision

    options = vision.ImageClassifierOptions(base_options=BaseOptions(model_asset_path=str(model)), max_results=5)
    out = []
    with vision.ImageClassifier.create_from_options(options) as clf:
        for f in images:
            result = clf.classify(mp.Image.create_from_file(str(f)))
            out.append([(c.category_name, c.score) for c in result.classifications[0].categories])
    return out


def _classify(bundle: Path, images: list[Path]) -> list[dict]:
    r = runner.invoke(app, ["classify", str(bundle), *map(str, images), "--json"])
    assert r.exit_code == 0, r.output
    return [json.loads(line) for line in r.output.splitlines() if line.startswith("{")]


@pytest.mark.parametrize("variant", [f"{SIZE}-float32", f"{SIZE}-int8"])
def test_mediapipe_names_both_labels_and_agrees_with_classify(hoh: dict[str, Path], variant: str) -> None:
    images = _photos(hoh["data"])
    bundle = hoh["default"] / variant
    assert load_bundle(bundle).manifest.binary_output == "two-class"
    seen = _mediapipe(bundle / "model.tflite", images)
    ours = _classify(bundle, images)
    assert len(seen) == len(ours) == len(images) == 2 * SUBJECTS * PER_SUBJECT
    for f, cats, mine in zip(images, seen, ours):
        assert sorted(name for name, _ in cats) == list(CLASSES), f.name
        assert cats[0][0] == mine["top"][0][0], f"{f.name}: MediaPipe {cats}, edgeclf {mine['top']}"
    tops = {cats[0][0] for cats in seen}
    assert tops == set(CLASSES), "a model that answers one class for every photo proves little"



def test_mediapipe_applies_the_manifests_temperature(hoh: dict[str, Path], tmp_path: Path) -> None:
    """The metadata's score calibration is edgeclf's temperature scaling: MediaPipe's calibrated scores are
    `edgeclf.scores.calibrate` of its own uncalibrated ones (the same model with metadata minus the calibration)."""
    from edgeclf.convert.metadata import add_metadata, model_info
    from edgeclf.scores import calibrate

    variant = f"{SIZE}-float32"
    m = load_bundle(hoh["default"] / variant).manifest
    assert m.calibration is not None
    uncalibrated = tmp_path / "model.tflite"
    uncalibrated.write_bytes(add_metadata(load_bundle(hoh["bare"] / variant).model_bytes,
                                          model_info(m.labels, m.task, m.binary_output, m.preprocess, "tiny", variant)))
    images = _photos(hoh["data"])
    calibrated, raw = _mediapipe(hoh["default"] / variant / "model.tflite", images), _mediapipe(uncalibrated, images)
    moved, compared = 0.0, 0
    clip = m.calibration.clip
    for f, cats, plain in zip(images, calibrated, raw):
        p = np.array([[dict(plain)[c] for c in CLASSES]])
        want = calibrate(p, m.calibration.temperature, clip)[0]
        got = np.array([dict(cats)[c] for c in CLASSES])
        if clip < p[0, 1] < 1 - clip:
            assert got == pytest.approx(want, abs=2e-3), f.name
            compared += 1
            moved = max(moved, float(np.abs(want - p[0]).max()))
        else:  # edgeclf clips p to [clip, 1 - clip] before the logit; MediaPipe's calibration has no clip
            assert int(np.argmax(got)) == int(np.argmax(want)) and got.max() >= want.max() - 1e-6, f.name
    assert compared >= len(images) // 4 and moved > 0.01, "a temperature that changes no score proves nothing"


def test_a_sigmoid_bundle_is_one_class_named_after_the_positive_label(hoh: dict[str, Path]) -> None:
    bundle = hoh["sigmoid"] / f"{SIZE}-float32"
    m = load_bundle(bundle).manifest
    assert m.binary_output == "sigmoid" and m.num_outputs == 1
    images = _photos(hoh["data"])[:: SUBJECTS]
    seen = _mediapipe(bundle / "model.tflite", images)
    ours = _classify(bundle, images)
    for cats, mine in zip(seen, ours):
        assert [name for name, _ in cats] == ["humans"]  # the score is P(humans), and the metadata says so
        assert mine["top"][0][0] == ("humans" if cats[0][1] >= 0.5 else "horses")


@pytest.mark.parametrize("variant", [f"{SIZE}-float32", f"{SIZE}-int8"])
def test_metadata_round_trips_through_mediapipes_reader(hoh: dict[str, Path], variant: str) -> None:
    from edgeclf.convert.metadata import LABELS_FILE, read_metadata

    bundle = load_bundle(hoh["default"] / variant)
    m = bundle.manifest
    back = read_metadata(bundle.model_bytes)
    assert back is not None and back.labels == m.labels
    meta = back.json
    assert meta["name"].startswith("edgeclf ") and variant in meta["name"] and "horses, humans" in meta["description"]
    (inp,) = meta["subgraph_metadata"][0]["input_tensor_metadata"]
    assert inp["content"]["content_properties"]["color_space"] == "RGB"
    norm = inp["process_units"][0]
    assert norm["options_type"] == "NormalizationOptions"
    p = m.preprocess
    # MediaPipe computes (pixel - mean) / std; edgeclf pixel * scale + offset: the same affine map
    mean, std = norm["options"]["mean"][0], norm["options"]["std"][0]
    for pixel in (0.0, 128.0, 255.0):
        assert (pixel - mean) / std == pytest.approx(pixel * p.scale + p.offset, abs=1e-6)
    out, distance = meta["subgraph_metadata"][0]["output_tensor_metadata"]  # the classes first, then the distance
    assert distance["name"] == "feature_distance" and "Mahalanobis" in distance["description"]
    assert "associated_files" not in distance and "process_units" not in distance
    assert out["associated_files"][0]["name"] == LABELS_FILE
    assert out["associated_files"][0]["type"] == "TENSOR_AXIS_LABELS"
    # the fitted temperature T as MediaPipe's per-score calibration: sigmoid(1/T * logit(p)), one line per label
    units = out["process_units"]
    assert units[0]["options_type"] == "ScoreCalibrationOptions"
    assert units[0]["options"]["score_transformation"] == "INVERSE_LOGISTIC"
    rows = [[float(v) for v in line.split(",")] for line in back.files["score_calibration.txt"].decode().splitlines()]
    assert rows == [pytest.approx([1.0, 1.0 / m.calibration.temperature, 0.0])] * 2
    sig = read_metadata(load_bundle(hoh["sigmoid"] / variant).model_bytes)
    assert sig is not None and sig.labels == ("humans",)


@pytest.mark.parametrize("variant", [f"{SIZE}-float32", f"{SIZE}-int8"])
def test_no_metadata_changes_no_tensor(hoh: dict[str, Path], variant: str) -> None:
    """Every tensor (weights and activations, after one invoke on a real photo) is byte-identical."""
    from ai_edge_litert.interpreter import Interpreter

    from edgeclf.convert.metadata import read_metadata

    with_md, bare = load_bundle(hoh["default"] / variant), load_bundle(hoh["bare"] / variant)
    assert read_metadata(bare.model_bytes) is None and read_metadata(with_md.model_bytes) is not None
    assert len(with_md.model_bytes) > len(bare.model_bytes)
    img = cv2.cvtColor(cv2.imread(str(_photos(hoh["data"])[0])), cv2.COLOR_BGR2RGB)
    tensors = []
    for b in (with_md, bare):
        it = Interpreter(model_content=b.model_bytes, experimental_preserve_all_tensors=True)
        it.allocate_tensors()
        inp = it.get_input_details()[0]
        x = img[None].astype(np.float32) * b.manifest.preprocess.scale + b.manifest.preprocess.offset
        if b.manifest.input.quantized:
            x = np.round(x / b.manifest.input.scale + b.manifest.input.zero_point)
        it.set_tensor(inp["index"], x.astype(inp["dtype"]))
        it.invoke()
        details = sorted(it.get_tensor_details(), key=lambda d: d["index"])
        got = []
        for d in details:
            try:
                value = it.get_tensor(d["index"]).tobytes()
            except ValueError:  # a tensor with no data (e.g. an optional input)
                value = None
            got.append((d["name"], tuple(d["shape"]), str(d["dtype"]), d["quantization"], value))
        tensors.append(got)
    assert len(tensors[0]) > 5 and tensors[0] == tensors[1]
    # the op-version verdict (what the manifest records for tflite-runtime 2.14) is taken on the file as written
    assert tflite_runtime_214_verdict(with_md.model_bytes).loads and tflite_runtime_214_verdict(bare.model_bytes).loads


def test_two_class_is_one_minus_p_and_p(hoh: dict[str, Path]) -> None:
    """The default export is the sigmoid model's p as [1 - p, p]: edgeclf reads both the same."""
    images = _photos(hoh["data"])
    two = _classify(hoh["default"] / f"{SIZE}-float32", images)
    one = _classify(hoh["sigmoid"] / f"{SIZE}-float32", images)
    for a, b in zip(two, one):
        assert a["probabilities"] == pytest.approx(b["probabilities"], abs=1e-5)
    manifest = json.loads((hoh["default"] / f"{SIZE}-int8" / "manifest.json").read_text())
    assert manifest["binary_output"] == "two-class"


def test_bad_binary_output_is_one_line_before_any_work(tmp_path: Path) -> None:
    r = runner.invoke(app, ["convert", str(tmp_path), "--binary-output", "three-class"])
    assert r.exit_code != 0
    assert "--binary-output 'three-class' is not supported; expected one of two-class, sigmoid" in r.output


def test_without_mediapipe_convert_says_how_in_one_line(hoh: dict[str, Path], tmp_path: Path, monkeypatch) -> None:
    """A desktop without the writer (no Linux aarch64 wheel): one line before any work, naming --no-metadata."""
    monkeypatch.setitem(sys.modules, "mediapipe", None)  # `import mediapipe` raises ImportError
    r = runner.invoke(app, ["convert", str(hoh["run"]), "--out", str(tmp_path / "b")])
    assert r.exit_code != 0 and not (tmp_path / "b").exists()
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and "needs mediapipe" in lines[0] and "--no-metadata" in lines[0], r.output


def test_two_class_head_on_a_model_that_lists_its_output() -> None:
    """`edgeclf train` saves models whose outputs are a list: called, they return [p] (found by #16's runs)."""
    import keras

    from edgeclf.convert.binary_output import with_binary_output

    inp = keras.Input((8, 8, 3))
    listed = keras.Model(inp, [keras.layers.Dense(1, activation="sigmoid")(keras.layers.Flatten()(inp))])
    two = with_binary_output(listed, "binary", "two-class")
    x = np.random.default_rng(0).random((4, 8, 8, 3), np.float32)
    out = listed(x)
    p = np.asarray(out[0] if isinstance(out, (list, tuple)) else out).reshape(-1)
    y = np.asarray(two(x))
    assert y.shape == (4, 2) and np.allclose(y, np.stack([1 - p, p], axis=1), atol=1e-6)
    assert with_binary_output(listed, "binary", "sigmoid") is listed
    assert with_binary_output(listed, "multiclass", "two-class") is listed
