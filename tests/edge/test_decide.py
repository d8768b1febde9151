"""Calibrated scores and "unknown" on the edge, per-class thresholds, --config and the events label filter
(#14 parts 1 and 2), on real bundles in a real interpreter, through the CLI and a real camera run."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest

from edgeclf.bundle import load_bundle, read_manifest, write_bundle
from edgeclf.calibration import Calibration, UnknownRule
from edgeclf.edge.decide import ChangeReporter, EventsFilter, decide_options, parse_thresholds, read_config
from edgeclf.edge.model import Classifier
from edgeclf.edge.postprocess import SmoothConfig, Smoother
from edgeclf.errors import UsageError
from edgeclf.imageio import read_bgr
from edgeclf.scores import calibrate

from .conftest import error_lines, read_events, run_cli

pytestmark = pytest.mark.tflite_runtime

HORSE_HUMAN = ["horse02-0.png", "horse24-0.png", "horse50-9.png", "human01-10.png", "human08-27.png",
               "human17-30.png"]


def _calibrated(src: Path, dst: Path, temperature: float, threshold: float | None) -> Path:
    """A copy of a real bundle whose manifest carries a calibration record (as `convert` writes it)."""
    b = load_bundle(src)
    rule = None if threshold is None else UnknownRule(threshold=threshold, fitted_on="test")
    write_bundle(dst, b.model_bytes, replace(b.manifest, calibration=Calibration(temperature, 1 / 512, unknown=rule)))
    return dst


def _images(bundles, tmp_path: Path) -> Path:
    d = tmp_path / "imgs"
    d.mkdir()
    for name in HORSE_HUMAN:
        shutil.copy(bundles.images / name, d / name)
    return d


def _classify_json(*args: str) -> list[dict]:
    r = run_cli("classify", *args, "--json")
    assert r.returncode == 0, r.stderr
    return [json.loads(line) for line in r.stdout.splitlines()]


def test_old_bundle_behaves_as_before(bundles, tmp_path: Path) -> None:
    """A schema-1 bundle (no calibration): raw probabilities, no "unknown", and --unknown auto says why."""
    src = tmp_path / "old"  # the fixture as edgeclf 0.2 wrote it: schema 1, no calibration, no binary_output
    shutil.copytree(bundles.path("b32-int8"), src)
    m = json.loads((src / "manifest.json").read_text())
    assert "calibration" not in m and m.get("binary_output") in (None, "sigmoid")
    m = {k: v for k, v in m.items() if k not in ("binary_output", "samples")} | {"schema_version": 1}
    (src / "manifest.json").write_text(json.dumps(m))
    clf = Classifier.load(src, threads=1)
    assert clf.calibration is None and clf.raw_probs is clf.probs
    rows = _classify_json(str(src), str(_images(bundles, tmp_path)))
    assert {r["label"] for r in rows} <= {"horses", "humans"}
    for r in rows:
        raw = clf(read_bgr(Path(r["file"])))
        assert np.allclose(r["probabilities"], raw, atol=1e-6)
    r = run_cli("classify", str(src), str(bundles.images / "horse02-0.png"), "--unknown", "auto")
    assert r.returncode == 2
    assert error_lines(r.stderr) == ["error: --unknown auto: this bundle has no unknown threshold (converted before "
                                     "edgeclf fitted one); re-convert it with `edgeclf convert`, or give one: "
                                     "--unknown 0.8"]


def test_calibrated_scores_and_unknown_through_classify(bundles, tmp_path: Path) -> None:
    src = bundles.path("b32-int8")
    cal = _calibrated(src, tmp_path / "cal", temperature=3.0, threshold=0.7)
    assert read_manifest(cal).calibration.unknown.threshold == 0.7
    info = run_cli("info", str(cal))
    assert info.returncode == 0 and "temperature 3" in info.stdout and "below 0.7" in info.stdout
    plain, calibrated = Classifier.load(src, threads=1), Classifier.load(cal, threads=1)
    folder = _images(bundles, tmp_path)
    rows = _classify_json(str(cal), str(folder))
    off = _classify_json(str(cal), str(folder), "--unknown", "off")
    assert len(rows) == len(off) == len(HORSE_HUMAN)
    saw_unknown = False
    for r, o in zip(rows, off):
        raw = plain(read_bgr(Path(r["file"]))).copy()
        want = calibrate(raw[None], 3.0, 1 / 512)[0]
        got = calibrated(read_bgr(Path(r["file"])))
        assert np.allclose(got, want, atol=1e-5) and np.allclose(calibrated.raw_probs, raw)
        assert np.allclose(r["probabilities"], want, atol=1e-5)
        # T = 3 pulls scores towards 0.5; below 0.7 the answer is "unknown", and only there
        assert (r["label"] == "unknown") == (want.max() < 0.7), (r, want)
        assert o["label"] == ("horses", "humans")[int(np.argmax(want))]
        saw_unknown |= r["label"] == "unknown"
    assert saw_unknown, "T = 3 should leave some of these images below 0.7"
    everything = _classify_json(str(cal), str(folder), "--unknown", "1")
    assert {r["label"] for r in everything} == {"unknown"}


def _soft_rgb(bundles, tmp_path: Path) -> Path:
    """The colour model answers 1.000; with a temperature of 20 its top scores come down to 0.41."""
    return _calibrated(bundles.path("rgb32-float32"), tmp_path / "soft", temperature=20.0, threshold=None)


def test_per_class_thresholds_and_config_file(bundles, tmp_path: Path) -> None:
    src = _soft_rgb(bundles, tmp_path)
    colours = [str(bundles.images / f"color-{c}{i}.png") for c in ("blue", "green", "red") for i in (0, 1)]
    base = _classify_json(str(src), *colours)
    assert [r["label"] for r in base] == ["blue", "blue", "green", "green", "red", "red"]
    assert all(0.35 < r["score"] < 0.45 for r in base), base
    strict = _classify_json(str(src), *colours, "--threshold", "red=0.5", "--threshold", "0.3")
    assert [r["label"] for r in strict] == ["blue", "blue", "green", "green", "uncertain", "uncertain"]
    assert [r["label"] for r in _classify_json(str(src), *colours, "--threshold", "0.5")] == ["uncertain"] * 6
    cfg = tmp_path / "edge.json"
    cfg.write_text(json.dumps({"thresholds": {"blue": 0.5}, "threshold": 0.0}))
    from_file = _classify_json(str(src), *colours, "--config", str(cfg))
    assert [r["label"] for r in from_file] == ["uncertain", "uncertain", "green", "green", "red", "red"]
    # the command line wins over the file
    both = _classify_json(str(src), *colours, "--config", str(cfg), "--threshold", "blue=0.0")
    assert [r["label"] for r in both] == [r["label"] for r in base]
    r = run_cli("classify", str(src), colours[0], "--threshold", "purple=0.5")
    assert r.returncode == 2
    assert error_lines(r.stderr) == ["error: threshold for 'purple': not a label of this bundle; its labels are "
                                     "blue, green, red"]


@pytest.mark.parametrize("values, says", [
    (["2"], "--threshold 2: expected a probability between 0 and 1"),
    (["humans=x"], "--threshold humans=x: expected a probability"),
    (["=0.5"], "--threshold '=0.5': expected P or LABEL=P"),
])
def test_bad_threshold_values_are_one_line(values: list[str], says: str) -> None:
    with pytest.raises(UsageError, match=says.replace("(", r"\(")):
        parse_thresholds(values)


def test_threshold_values_parse() -> None:
    assert parse_thresholds(["0.6", "humans=0.8", "horses=0.6", "a=b=0.1"]) == \
        (0.6, (("humans", 0.8), ("horses", 0.6), ("a=b", 0.1)))


def test_config_file_is_checked(tmp_path: Path) -> None:
    f = tmp_path / "c.json"
    f.write_text(json.dumps({"thresholds": {"humans": 0.8}, "unknown": 0.75, "events_only": ["humans"],
                             "events_ignore": "uncertain"}))
    got = read_config(f)
    assert got.thresholds == (("humans", 0.8),) and got.unknown == 0.75
    assert got.events_only == ("humans",) and got.events_ignore == ("uncertain",)
    for bad, says in [({"treshold": 0.5}, "unknown key 'treshold'"), ({"thresholds": [0.5]}, "thresholds: expected"),
                      ({"unknown": "maybe"}, "--unknown 'maybe': expected off, auto or a probability"),
                      ({"events_only": [3]}, "events_only: expected a list of label names")]:
        f.write_text(json.dumps(bad))
        with pytest.raises(UsageError, match=says):
            read_config(f)
    f.write_text("{not json")
    with pytest.raises(UsageError, match="not valid JSON"):
        read_config(f)
    with pytest.raises(UsageError, match="no such file"):
        read_config(tmp_path / "missing.json")


def test_yaml_config_only_with_pyyaml(tmp_path: Path) -> None:
    f = tmp_path / "c.yaml"
    f.write_text("thresholds:\n  humans: 0.8\nunknown: auto\n")
    try:
        import yaml  # noqa: F401
    except ImportError:
        with pytest.raises(UsageError, match="YAML needs PyYAML"):
            read_config(f)
    else:
        assert read_config(f).thresholds == (("humans", 0.8),) and read_config(f).unknown == "auto"


def test_smoother_unknown_has_hysteresis_and_comes_first() -> None:
    cal = Calibration(1.0, unknown=UnknownRule(threshold=0.7))
    s = Smoother(("cat", "dog"), SmoothConfig(hysteresis=0.1, class_thresholds=(("dog", 0.6), ("cat", 0.85))), cal)
    seq = [0.95, 0.65, 0.55, 0.68, 0.8, 0.2, 0.1]  # p(dog)
    got = [s.update(np.array([1 - p, p], np.float32)).label for p in seq]
    # dog is held at 0.65 (not below 0.7 - 0.1); unknown at 0.55 and, entering again, at 0.68 (< 0.7);
    # cat at 0.8 is under its own 0.85: uncertain; at 0.9 it is cat
    assert got == ["dog", "dog", "unknown", "unknown", "dog", "uncertain", "cat"]
    assert Smoother(("cat", "dog"), SmoothConfig(unknown="off"), cal).unknown is None
    assert Smoother(("cat", "dog"), SmoothConfig(unknown=0.6), cal).unknown == 0.6


def test_change_reporter_only_and_ignore() -> None:
    def run(flt: EventsFilter, seq: list[str]) -> list[tuple[str, str | None]]:
        r = ChangeReporter(flt)
        out = []
        for label in seq:
            ok, prev = r.change(label)
            if ok:
                out.append((label, prev))
        return out

    seq = ["horses", "uncertain", "horses", "humans", "unknown", "humans", "horses"]
    assert run(EventsFilter(), seq) == list(zip(seq, [None] + seq[:-1]))
    assert run(EventsFilter(ignore=("uncertain", "unknown")), seq) == \
        [("horses", None), ("humans", "horses"), ("horses", "humans")]
    assert run(EventsFilter(only=("humans",)), seq) == \
        [("humans", "horses"), ("unknown", "humans"), ("humans", "unknown"), ("horses", "humans")]
    with pytest.raises(UsageError, match="--events-only 'cats': not a label of this bundle; expected one of "
                                         "horses, humans, uncertain, unknown"):
        EventsFilter(only=("cats",)).check(("horses", "humans"))


def _colour_folder(bundles, tmp_path: Path, order: list[str]) -> Path:
    d = tmp_path / "frames"
    d.mkdir()
    for i, colour in enumerate(order):
        img = cv2.imread(str(bundles.images / f"color-{colour}0.png"), cv2.IMREAD_COLOR)
        cv2.imwrite(str(d / f"f{i:02d}.png"), img)
    return d


def test_camera_events_only_and_ignore(bundles, tmp_path: Path) -> None:
    """A real camera process on a folder: blue red blue green blue red, with the filter flags and --config."""
    src = _soft_rgb(bundles, tmp_path)
    folder = _colour_folder(bundles, tmp_path, ["blue", "red", "blue", "green", "blue", "red"])

    def changes(*flags: str) -> list[tuple[str, str | None]]:
        ev = tmp_path / f"ev{len(list(tmp_path.glob('ev*')))}.jsonl"
        r = run_cli("camera", str(src), "--source", str(folder), "--events", str(ev), "--hysteresis", "0", *flags)
        assert r.returncode == 0, r.stderr
        return [(e["label"], e["previous"]) for e in read_events(ev) if e["event"] == "change"]

    start = run_cli("camera", str(src), "--source", str(folder), "--max-frames", "1", "--unknown", "off")
    assert json.loads(start.stdout.splitlines()[0])["unknown_below"] is None
    assert changes() == [("blue", None), ("red", "blue"), ("blue", "red"), ("green", "blue"), ("blue", "green"),
                         ("red", "blue")]
    assert changes("--events-only", "red") == [("red", "blue"), ("blue", "red"), ("red", "blue")]
    assert changes("--events-ignore", "green") == [("blue", None), ("red", "blue"), ("blue", "red"),
                                                   ("red", "blue")]
    cfg = tmp_path / "cam.json"
    cfg.write_text(json.dumps({"events_ignore": ["green"], "threshold": 0.35, "thresholds": {"red": 0.5}}))
    # red (0.41) is under its 0.5: "uncertain"; green is ignored: blue uncertain blue (green) blue uncertain
    assert changes("--config", str(cfg)) == [("blue", None), ("uncertain", "blue"), ("blue", "uncertain"),
                                             ("uncertain", "blue")]
    r = run_cli("camera", str(src), "--source", str(folder), "--events-only", "purple")
    assert r.returncode == 2 and error_lines(r.stderr) == [
        "error: --events-only 'purple': not a label of this bundle; expected one of blue, green, red, uncertain, "
        "unknown"]


def test_camera_answers_unknown_in_events_and_summary(bundles, tmp_path: Path) -> None:
    cal = _calibrated(bundles.path("b32-int8"), tmp_path / "cal", temperature=3.0, threshold=1.0)
    ev = tmp_path / "ev.jsonl"
    r = run_cli("camera", str(cal), "--source", str(_images(bundles, tmp_path)), "--events", str(ev), "--every", "1")
    assert r.returncode == 0, r.stderr
    events = read_events(ev)
    start = next(e for e in events if e["event"] == "start")
    assert start["temperature"] == 3.0 and start["unknown_below"] == 1.0
    frames = [e for e in events if e["event"] in ("change", "frame")]
    assert len(frames) == len(HORSE_HUMAN) and {e["label"] for e in frames} == {"unknown"}
    assert [e["event"] for e in frames].count("change") == 1
    assert events[-1]["event"] == "summary" and events[-1]["frames"] == len(HORSE_HUMAN)
    assert events[-1]["labels"] == {"unknown": len(HORSE_HUMAN)}  # frames per answer, "unknown" among them


def test_decide_options_merge_flags_over_file(tmp_path: Path) -> None:
    f = tmp_path / "c.json"
    f.write_text(json.dumps({"threshold": 0.3, "thresholds": {"a": 0.9, "b": 0.8}, "unknown": "off",
                             "events_only": ["a"]}))
    cfg, flt = decide_options(["b=0.1"], "0.5", f, None, ["b"], window=3)
    assert cfg.threshold == 0.3 and dict(cfg.class_thresholds) == {"a": 0.9, "b": 0.1}
    assert cfg.unknown == 0.5 and cfg.window == 3
    assert flt == EventsFilter(only=("a",), ignore=("b",))
