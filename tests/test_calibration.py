"""Calibration (#14 part 1): the arithmetic, the manifest record (schema 2, schema 1 still read), and
`convert` fitting a temperature and an unknown threshold on each real variant."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from edgeclf.bundle import MANIFEST_FILE, SCHEMA_VERSION, read_manifest, write_bundle
from edgeclf.calibration import Calibration, UnknownRule
from edgeclf.errors import BundleError
from edgeclf.scores import (calibrate, calibrate_into, choose_unknown_threshold, clip_for, ece, fit_temperature,
                            logits, softmax)

from .runfixture import tiny_run, tiny_run_template  # noqa: F401  (fixtures)
from .test_bundle import FAKE_TFLITE, make_manifest


@pytest.mark.parametrize("n_classes, true_t", [(2, 0.4), (2, 2.5), (4, 1.8)])
def test_fit_temperature_finds_the_temperature_that_made_the_labels(n_classes: int, true_t: float) -> None:
    """Labels drawn from softmax(z / T): given softmax(z), the fit recovers T."""
    rng = np.random.default_rng(1)
    z = rng.normal(0, 3, (4000, n_classes))
    if n_classes == 2:
        z[:, 0] = 0.0  # one sigmoid: logit z1, the edge's [1 - p, p]
    truth = softmax(z / true_t)
    y = np.array([rng.choice(n_classes, p=p) for p in truth])
    probs = softmax(z)
    t = fit_temperature(probs, y, 1e-6)
    assert t == pytest.approx(true_t, rel=0.12)
    assert ece(calibrate(probs, t, 1e-6), y) < ece(probs, y)


def test_separable_validation_does_not_make_everything_certain() -> None:
    """Every validation image right with a margin: plain log-likelihood would drive T to the grid's floor;
    the smoothed targets stop at a confidence 200 images support (about 1 - 1/202)."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    z1 = np.where(y == 1, 1.0, -1.0) * rng.uniform(2.0, 5.5, 200)  # an int8 model's range of logits
    probs = softmax(np.stack([np.zeros(200), z1], axis=1))
    t = fit_temperature(probs, y, 1 / 512)
    assert t > 0.2
    top = calibrate(probs, t, 1 / 512).max(axis=1)
    assert 0.99 < np.mean(top) < 1 - 1e-4


@pytest.mark.parametrize("n_classes", [2, 3, 10, 1000])
def test_the_edges_one_row_calibration_is_calibrate_bit_for_bit(n_classes: int) -> None:
    """`calibrate_into` (the camera's per-frame path: Python floats for two classes, in place for more) gives the
    float32 values `calibrate` gives, to the bit: int8 steps, 0 and 1, nan, and a temperature whose power
    overflows a Python float."""
    rng = np.random.default_rng(n_classes)
    out, work = np.empty(n_classes, np.float32), np.empty(n_classes)
    rows = [rng.dirichlet(np.ones(n_classes) * a) for a in (0.1, 1.0, 10.0) for _ in range(40)]
    if n_classes == 2:
        rows += [np.array([1 - q, q]) for q in [k / 255 for k in range(256)] + [0.5, 1e-9]]
    with np.errstate(all="ignore"):
        for row in [*rows, np.full(n_classes, np.nan)]:
            raw = np.asarray(row, np.float32)
            for t, clip in ((0.05, 1e-6), (1.0, 1 / 512), (3.0296, 1 / 510), (20.0, 1e-6), (1e-4, 1e-6)):
                want = calibrate(raw[None], t, clip)[0].astype(np.float32)
                calibrate_into(raw, out, t, clip, work)
                assert want.tobytes() == out.tobytes(), (raw[:4], t, clip, want[:4], out[:4])


def test_binary_logits_are_the_sigmoid_inverse_and_clipped() -> None:
    p = np.array([[0.5, 0.5], [0.1, 0.9], [1.0, 0.0]])
    z = logits(p, 1e-3)
    assert z[:, 0].tolist() == [0.0, 0.0, 0.0]
    assert z[1, 1] == pytest.approx(np.log(9))
    assert z[2, 1] == pytest.approx(np.log(1e-3 / (1 - 1e-3)))  # p = 0 kept finite
    assert np.allclose(calibrate(p[:2], 1.0, 1e-6), p[:2])
    assert calibrate(p[1:2], 2.0, 1e-6)[0, 1] == pytest.approx(1 / (1 + np.exp(-np.log(9) / 2)))
    assert clip_for(True, 1 / 256) == 1 / 512 and clip_for(False, 0.0) == 1e-6


def test_unknown_threshold_keeps_the_loss_cap_and_prefers_the_lower_threshold() -> None:
    rng = np.random.default_rng(0)
    known = rng.uniform(0.6, 1.0, 400)
    generated = rng.uniform(0.5, 0.75, 200)
    t = choose_unknown_threshold(known, generated, max_loss=0.05)
    assert np.mean(known < t) <= 0.05
    assert np.mean(generated < t) > 0.4  # as high as the cap allows: about (0.62 - 0.5) / 0.25
    # generated images far below every known one: the lowest threshold that catches them all, no recall lost
    t2 = choose_unknown_threshold(known, np.full(50, 0.3), max_loss=0.05)
    assert 0.3 < t2 <= known.min() and np.mean(known < t2) == 0


def _calibration() -> Calibration:
    return Calibration(temperature=0.5, clip=1 / 512, fitted_on="validation", n=40, ece_before=0.1, ece_after=0.02,
                       unknown=UnknownRule(threshold=0.8, fitted_on="validation + generated",
                                           validation_unknown=0.05, generated_unknown=0.6))


def test_manifest_carries_the_record_and_reads_schema_1(tmp_path: Path) -> None:
    m = write_bundle(tmp_path / "b", FAKE_TFLITE, replace(make_manifest(), calibration=_calibration()))
    d = json.loads((tmp_path / "b" / MANIFEST_FILE).read_text())
    assert d["schema_version"] == SCHEMA_VERSION == 2
    assert d["calibration"]["temperature"] == 0.5 and d["calibration"]["unknown"]["threshold"] == 0.8
    assert read_manifest(tmp_path / "b") == m
    # a bundle written before calibration existed: schema 1, no record, reads as "no calibration"
    d["schema_version"] = 1
    del d["calibration"]
    (tmp_path / "b" / MANIFEST_FILE).write_text(json.dumps(d))
    assert read_manifest(tmp_path / "b").calibration is None
    plain = write_bundle(tmp_path / "c", FAKE_TFLITE, make_manifest())
    assert "calibration" not in json.loads((tmp_path / "c" / MANIFEST_FILE).read_text())
    assert plain.calibration is None


@pytest.mark.parametrize("change, says", [
    (lambda c: c.update(temperature="hot"), "calibration.temperature"),
    (lambda c: c.update(temperature=0), "calibration.temperature"),
    (lambda c: c.update(temperature=1e6), "calibration.temperature 1000000.0: expected a number between"),
    (lambda c: c.update(clip=0.7), "calibration.clip"),
    (lambda c: c.update(method="platt"), "calibration.method 'platt' is not supported"),
    (lambda c: c["unknown"].update(threshold=1.5), "calibration.unknown.threshold"),
    (lambda c: c["unknown"].pop("threshold"), "calibration.unknown: missing key 'threshold'"),
    (lambda c: c.update(unknown=[0.5]), "calibration.unknown"),
])
def test_a_bad_record_names_its_field(tmp_path: Path, change, says: str) -> None:
    write_bundle(tmp_path / "b", FAKE_TFLITE, replace(make_manifest(), calibration=_calibration()))
    f = tmp_path / "b" / MANIFEST_FILE
    d = json.loads(f.read_text())
    change(d["calibration"])
    f.write_text(json.dumps(d))
    with pytest.raises(BundleError, match=says.replace("(", r"\(")):
        read_manifest(tmp_path / "b")


def test_convert_fits_each_variant_on_its_own_outputs(tiny_run: Path) -> None:
    """Real converter, real interpreter: each variant has its own temperature and clip, the threshold keeps
    the validation loss under its cap, and the edge's scores are the calibrated model outputs."""
    from edgeclf.convert.pipeline import ConvertConfig, convert_run
    from edgeclf.convert.quantize import QuantizationKind
    from edgeclf.edge.model import Classifier
    from edgeclf.imageio import read_bgr
    from edgeclf.rundir import RunDir

    result = convert_run(tiny_run, ConvertConfig(kinds=(QuantizationKind.for_float32(), QuantizationKind.for_int8()),
                                                 sizes=(24,), allow_drop=True))
    cals = {}
    for r in result.results:
        m = read_manifest(r.path)
        c = m.calibration
        assert c is not None and c.n == len(RunDir(tiny_run).read_split().val)
        assert 0.01 <= c.temperature <= 100 and "validation" in c.fitted_on
        assert c.unknown is not None and c.unknown.validation_unknown <= c.unknown.max_loss
        assert c.unknown.generated_unknown is not None and "generated" in c.unknown.fitted_on
        assert c.test_ece_before is None and c.unknown.test_unknown is None  # no test side: nothing measured twice
        cals[m.source.quantization] = c
        clf = Classifier.load(r.path, threads=1)
        info = RunDir(tiny_run).read_info()
        image = read_bgr(Path(info.data_dir) / RunDir(tiny_run).read_split().val[0][0])
        probs = clf(image).copy()
        assert np.allclose(probs, calibrate(clf.raw_probs[None], c.temperature, c.clip)[0], atol=1e-5)
    assert cals["int8"].clip == pytest.approx(read_manifest(result.results[1].path).output.scale / 2)
    assert cals["float32"].clip == 1e-6


def test_the_per_frame_binary_form_is_the_logit_form() -> None:
    p1 = np.random.default_rng(0).uniform(0, 1, (500, 1))
    p = np.concatenate([1 - p1, p1], axis=1)
    for t in (0.3, 1.0, 3.0):
        assert np.allclose(calibrate(p, t, 1e-3), softmax(logits(p, 1e-3) / t), atol=1e-12)


def test_eval_shows_before_and_after_on_a_calibrated_bundle(tmp_path_factory: pytest.TempPathFactory,
                                                             tmp_path: Path) -> None:
    """`edgeclf eval` of a real bundle with a calibration record: ECE of the model's own scores (the same bundle
    without the record) and of the calibrated ones, the unknown share, and both curves in reliability.png."""
    import shutil

    from edgeclf.bundle import load_bundle
    from edgeclf.evaluate.report import summary_lines, write_outputs
    from edgeclf.evaluate.run import EvalConfig, run_eval

    from .edge.fixtures import get_bundles

    bundles = get_bundles(tmp_path_factory)
    src = bundles.root / "b32-int8"
    b = load_bundle(src)
    write_bundle(tmp_path / "cal", b.model_bytes, replace(b.manifest, calibration=Calibration(
        2.0, 1 / 512, unknown=UnknownRule(threshold=0.75))))
    data = tmp_path / "set"
    for f in sorted(bundles.images.glob("h*.png")):
        label = "horses" if f.name.startswith("horse") else "humans"
        (data / label).mkdir(parents=True, exist_ok=True)
        shutil.copy(f, data / label / f.name)
    plain = run_eval(EvalConfig(str(src), str(data), threads=1))
    cal = run_eval(EvalConfig(str(tmp_path / "cal"), str(data), threads=1))
    assert plain.calibration is None and cal.calibration is not None
    c = cal.calibration
    assert c.temperature == 2.0 and c.ece_before == plain.evaluation.ece and c.ece_after == cal.evaluation.ece
    assert c.reliability_before == plain.evaluation.reliability
    scores = np.array([s for *_, s in cal.predictions])  # the calibrated probability of each answer
    assert c.unknown_fraction == pytest.approx(float(np.mean(scores < 0.75)), abs=1e-4)
    assert [m for m in summary_lines(cal) if "ECE" in m and "before" in m]
    d = cal.to_dict()["calibration"]
    assert d["ece_before"] == c.ece_before and d["unknown_threshold"] == 0.75
    pytest.importorskip("matplotlib")
    written = write_outputs(cal, tmp_path / "out")
    assert tmp_path / "out" / "reliability.png" in written and (tmp_path / "out" / "reliability.png").stat().st_size > 0
