"""`edgeclf bench` on a tiny real run: real Keras training, the real TFLite converter, a real interpreter.

Checks what the bench writes (files, columns, sane values, MACs counted exactly for a known net); never
how fast anything is.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from edgeclf.bundle import Manifest, TensorSpec, write_bundle
from edgeclf.contracts import BundleMetrics, Source
from edgeclf.cli import app
from edgeclf.bench.report import ACC_HEADER, COLUMNS, FEW_SUBJECTS, BenchReport, BenchRow, to_markdown
from edgeclf.preprocess import PreprocessSpec
from edgeclf.rundir import RunDir, RunInfo, RunModel, Split

from .conftest import write_color_folders
from .make_bundles import convert_model, tensor_spec

SIZE = 32
LABELS = ("blue", "red")
QUANTS = ("float32", "dynamic", "int8")
# Conv2D(4, 3x3) on 32x32x3 -> 30x30x4, DepthwiseConv2D(3x3) -> 28x28x4, pool -> 14x14x4, Dense(8), Dense(1)
EXPECTED_MACS = 30 * 30 * 4 * 3 * 3 * 3 + 28 * 28 * 4 * 3 * 3 + 14 * 14 * 4 * 8 + 8 * 1

runner = CliRunner()


def _tiny_model():
    import keras

    return keras.Sequential([
        keras.Input((SIZE, SIZE, 3)),
        keras.layers.Conv2D(4, 3, activation="relu"),
        keras.layers.DepthwiseConv2D(3, activation="relu"),
        keras.layers.MaxPooling2D(2),
        keras.layers.Flatten(),
        keras.layers.Dense(8, activation="relu"),  # 6272 weights: enough for dynamic-range quantization
        keras.layers.Dense(1, activation="sigmoid"),
    ])


def make_tiny_run(root: Path) -> Path:
    """A run directory as `edgeclf train` + `edgeclf convert` leave it, for a 2-class colour task at 32 px."""
    import keras
    from ai_edge_litert.interpreter import Interpreter

    from edgeclf.edge.preprocess import Preprocessor
    from edgeclf.imageio import read_bgr

    keras.utils.set_random_seed(0)
    data = write_color_folders(root / "data", n_per_class=12, size=40, classes=LABELS)
    files = sorted(data.glob("*/*.png"))
    items = [(str(f.relative_to(data)), LABELS.index(f.parent.name)) for f in files]
    val = tuple(x for x in items if x[0].split("/")[1].startswith(("blue03", "red03")))
    train = tuple(x for x in items if x not in val)
    spec = PreprocessSpec(SIZE, SIZE)
    pre = Preprocessor(spec, TensorSpec("float32"))
    x = np.concatenate([pre(read_bgr(data / rel)).copy() for rel, _ in train])
    y = np.array([label for _, label in train], np.float32)
    model = _tiny_model()
    model.compile(keras.optimizers.Adam(1e-2), "binary_crossentropy")
    model.fit(x, y, epochs=8, batch_size=8, verbose=0)

    run = RunDir(root / "run")
    (run.path / "models").mkdir(parents=True)
    model.save(run.model_path(SIZE))
    run.write_info(RunInfo(LABELS, "binary", "tiny", str(data), {SIZE: RunModel(SIZE, f"models/{SIZE}.keras", spec)}))
    run.write_split(Split("group", train, val))
    for quant in QUANTS:
        tfl = convert_model(model, quant, x[:16])
        it = Interpreter(model_content=tfl)
        manifest = Manifest(labels=LABELS, task="binary", positive_label=LABELS[1], preprocess=spec,
                            input=tensor_spec(it.get_input_details()[0]), output=tensor_spec(it.get_output_details()[0]),
                            source=Source(run=str(run.path), arch="tiny", size=SIZE, quantization=quant),
                            metrics=BundleMetrics(accuracy=1.0, agreement=0.5))
        write_bundle(run.bundles / f"{SIZE}-{quant}", tfl, manifest)
    return run.path


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    return make_tiny_run(tmp_path_factory.mktemp("bench"))


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_bench_run_writes_table_csv_md_png(tiny_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    r = runner.invoke(app, ["bench", str(tiny_run), "--repeats", "2", "--warmup", "1", "--frames", "4",
                            "--threads", "1", "--threads", "2", "--runtime", "ai-edge-litert", "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert all(f"32-{q}" in r.output for q in QUANTS)
    for name in ("bench.csv", "bench.md", "bench.json", "bench.png"):
        assert (out / name).stat().st_size > 0, name
    rows = _rows(out / "bench.csv")
    assert tuple(rows[0].keys()) == COLUMNS
    assert len(rows) == 6  # 3 bundles x 2 thread counts on ai-edge-litert
    assert {(x["variant"], x["threads"]) for x in rows} == {(f"32-{q}", t) for q in QUANTS for t in "12"}
    for x in rows:
        assert x["status"] == "ok" and x["runtime"] == "ai-edge-litert" and x["runtime_version"]
        size = (tiny_run / "bundles" / x["variant"] / "model.tflite").stat().st_size
        assert float(x["size_kb"]) == pytest.approx(size / 1024)
        assert int(x["n_eval"]) == 6 and 0.0 <= float(x["accuracy"]) <= 1.0
        # the interval over the 2 held-out subjects (blue03, red03): it holds the figure, and says it is too few
        assert float(x["acc_low"]) <= float(x["accuracy"]) <= float(x["acc_high"]) and float(x["acc_low"]) < 1.0
        assert int(x["acc_groups"]) == 2 and x["acc_enough"] == "False"
        assert x["agreement_src"] == "keras" and float(x["agreement"]) >= 0.5  # the manifest's 0.5 is not used
        p50, p95 = float(x["p50_ms"]), float(x["p95_ms"])
        assert 0 < p50 <= p95 and float(x["e2e_p50_ms"]) > 0 and float(x["load_ms"]) > 0
        assert float(x["e2e_ratio"]) == pytest.approx(float(x["e2e_p50_ms"]) / p50)
        assert float(x["mmacs"]) * 1e6 == pytest.approx(EXPECTED_MACS)
        assert float(x["gmacs_per_s"]) == pytest.approx(EXPECTED_MACS / (p50 * 1e6), rel=1e-6)
        assert 10 < float(x["peak_rss_mb"]) < 2000 and 0 < float(x["first_frame_s"]) < 120
        assert int(x["repeats"]) == 2 and int(x["frames"]) == 4
    int8 = next(x for x in rows if x["variant"] == "32-int8")
    assert float(int8["size_kb"]) < next(float(x["size_kb"]) for x in rows if x["variant"] == "32-float32")
    md = (out / "bench.md").read_text()
    assert "| variant |" in md and "32-int8" in md and "cores" in md and "ai-edge-litert" in md
    assert f"| {ACC_HEADER} |" in md and f"{float(int8['accuracy']):.3f}? [" in md and "] (2) |" in md
    assert FEW_SUBJECTS in md
    report = json.loads((out / "bench.json").read_text())
    assert report["machine"]["cores"] >= 1 and report["machine"]["cpu"]
    assert set(report["keras_accuracy"]) == {str(SIZE)}


def test_bench_table_shows_accuracy_interval_and_subjects() -> None:
    """The accuracy column of 13 test subjects, all right: the interval the tool prints, not [1.00, 1.00]."""
    from edgeclf.bench.run import held_out_groups
    from edgeclf.metrics import bootstrap_interval

    files = [(f"/d/human/h{i % 3}-{i}.png", "human") for i in range(45)] + \
            [(f"/d/horse/x{i % 10}-{i}.png", "horse") for i in range(148)]
    groups = held_out_groups(Path("/nonexistent-run"), files)  # no config.json: the default pattern
    assert len(set(groups)) == 13
    iv = bootstrap_interval([True] * len(files), groups, [0] * 45 + [1] * 148)
    base = dict(variant="150-int8", size=150, quant="int8", runtime="ai-edge-litert", runtime_version="2",
                threads=1, status="ok", size_kb=10.0, load_ms=1.0, accuracy=iv.accuracy, agreement=1.0,
                agreement_src="keras", p50_ms=1.0, p95_ms=1.0, e2e_p50_ms=2.0, e2e_p95_ms=2.0, e2e_ratio=2.0,
                peak_rss_mb=50.0, first_frame_s=0.5, mmacs=1.0, gmacs_per_s=1.0, spread_pct=1.0, repeats=1,
                frames=1, n_eval=len(files), bundle="b")
    rows = (BenchRow(**base, acc_low=iv.low, acc_high=iv.high, acc_groups=iv.n_groups, acc_enough=iv.enough),
            BenchRow(**{**base, "variant": "300-int8", "accuracy": None, "n_eval": 0}))
    md = to_markdown(BenchReport("run", {"cores": 2}, rows))
    assert f"| {ACC_HEADER} |" in md and "| 1.000 [0.77, 1.00] (13) |" in md and FEW_SUBJECTS not in md
    assert md.splitlines()[-1].split(" | ")[5] == "—"  # no accuracy measured: no interval either


def test_bench_one_bundle_without_run_uses_manifest_agreement(tiny_run: Path, tmp_path: Path) -> None:
    """A bundle copied away from its run (as on a Pi): no accuracy, the converter's agreement, no TensorFlow."""
    import shutil

    bundle = tmp_path / "pi" / "32-int8"
    shutil.copytree(tiny_run / "bundles" / "32-int8", bundle)
    m = json.loads((bundle / "manifest.json").read_text())
    m["source"]["run"] = str(tmp_path / "gone")
    (bundle / "manifest.json").write_text(json.dumps(m))
    probe = ("import sys; from typer.testing import CliRunner; from edgeclf.cli import app;"
             "r = CliRunner().invoke(app, sys.argv[1:]); print(r.output);"
             "print('HEAVY', sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow','keras','matplotlib')));"
             "print('EXIT', r.exit_code)")
    out = subprocess.run([sys.executable, "-c", probe, "bench", str(bundle), "--repeats", "1", "--warmup", "0",
                          "--frames", "2", "--threads", "1", "--runtime", "ai-edge-litert", "--no-plot",
                          "--out", str(tmp_path / "o")],
                         capture_output=True, text=True, timeout=300)
    assert "EXIT 0" in out.stdout, out.stdout + out.stderr
    assert "HEAVY []" in out.stdout
    (row,) = _rows(tmp_path / "o" / "bench.csv")
    assert row["accuracy"] == "" and row["agreement_src"] == "manifest" and float(row["agreement"]) == 0.5
    assert not (tmp_path / "o" / "bench.png").exists()
    assert "accuracy not measured" in (tmp_path / "o" / "bench.md").read_text()


def _tflite_python() -> str | None:
    """The tflite-runtime venv's python: $EDGECLF_TFL_PYTHON, or the .venv-tflite scripts/test.sh makes."""
    import os

    from .conftest import REPO

    cand = os.environ.get("EDGECLF_TFL_PYTHON") or str(REPO / ".venv-tflite" / "bin" / "python")
    return cand if Path(cand).is_file() else None


def test_bench_measures_tflite_runtime_in_its_own_venv(tiny_run: Path, tmp_path: Path) -> None:
    """tflite-runtime 2.14 (numpy < 2) cannot share this venv: bench runs it in its own python."""
    py = _tflite_python()
    if py is None:
        pytest.skip("no tflite-runtime venv here (scripts/test.sh makes .venv-tflite; or set EDGECLF_TFL_PYTHON)")
    r = runner.invoke(app, ["bench", str(tiny_run), "--runtime", "tflite-runtime", "--tflite-python", py,
                            "--repeats", "1", "--warmup", "1", "--frames", "3", "--threads", "1", "--no-rss",
                            "--no-keras", "--no-plot", "--out", str(tmp_path)])
    assert r.exit_code == 0, r.output
    rows = {x["variant"]: x for x in _rows(tmp_path / "bench.csv")}
    assert {x["runtime"] for x in rows.values()} == {"tflite-runtime"}
    assert rows["32-int8"]["runtime_version"].startswith("2.14")
    for q in ("float32", "int8"):
        assert rows[f"32-{q}"]["status"] == "ok" and float(rows[f"32-{q}"]["p50_ms"]) > 0
        assert 0.0 <= float(rows[f"32-{q}"]["accuracy"]) <= 1.0
    # the dynamic-range model needs FULLY_CONNECTED v12: a row that says so, not a crash
    assert rows["32-dynamic"]["status"].startswith("does not load") and rows["32-dynamic"]["p50_ms"] == ""
    assert "does not load" in (tmp_path / "bench.md").read_text()


def test_bench_bad_target_is_one_line(tmp_path: Path) -> None:
    r = runner.invoke(app, ["bench", str(tmp_path / "nope")])
    assert r.exit_code != 0 and r.output.startswith("error:") and "no such run or bundle" in r.output
    (tmp_path / "empty").mkdir()
    r = runner.invoke(app, ["bench", str(tmp_path / "empty")])
    assert r.exit_code != 0 and "holds no bundle" in r.output and "Traceback" not in r.output
    r = runner.invoke(app, ["bench", str(tmp_path), "--repeats", "0"])
    assert r.exit_code == 2 and "--repeats 0" in r.output


def _script(name: str, *args: str, tmp: Path) -> dict:
    from .conftest import REPO

    out = tmp / f"{name}.json"
    r = subprocess.run([sys.executable, str(REPO / "benchmarks" / f"{name}.py"), *args, "--json", str(out)],
                       capture_output=True, text=True, timeout=600, cwd=REPO)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "cores" in r.stdout and "|" in r.stdout  # the machine line and a table
    return json.loads(out.read_text())


def test_quantization_script_compares_int8_with_float32(tiny_run: Path, tmp_path: Path) -> None:
    res = _script("quantization", "--run", str(tiny_run), tmp=tmp_path)
    v = res["variants"]["32-int8"]
    sizes = {q: (tiny_run / "bundles" / f"32-{q}" / "model.tflite").stat().st_size for q in ("int8", "float32")}
    assert v["size_ratio"] == pytest.approx(sizes["int8"] / sizes["float32"], rel=1e-6)
    assert v["delta_pp"] == pytest.approx(100 * (v["accuracy"] - v["float32_accuracy"]))
    assert v["agreement_src"] == "keras" and 0.0 <= v["agreement"] <= 1.0 and res["n_eval"] == 6


def test_edge_frame_cost_script_runs_the_camera_loop(tiny_run: Path, tmp_path: Path) -> None:
    res = _script("edge_frame_cost", "--run", str(tiny_run), "--frames", "6", "--repeats", "1", "--no-keras",
                  tmp=tmp_path)
    assert set(res["bundles"]) == {f"32-{q}" for q in QUANTS}
    for b in res["bundles"].values():
        cam = b["camera_ms"]
        assert b["invoke_ms"] > 0 and cam["total"] > 0 and cam["invoke"] > 0 and cam["preprocess"] > 0
        assert b["ratio"] == pytest.approx(cam["total"] / b["invoke_ms"])


def test_edge_frame_cost_paced_reads_the_clip_at_its_rate(tiny_run: Path, tmp_path: Path) -> None:
    """--pace: the loop waits for each frame as it would for a camera's, so a frame takes the frame interval."""
    res = _script("edge_frame_cost", "--run", str(tiny_run), "--bundle", "32-int8", "--frames", "8", "--repeats", "2",
                  "--no-keras", "--features", "watch", "--pace", "20", tmp=tmp_path)
    watch = res["features"]["32-int8"]["watch"]
    assert 30 < watch["plain_ms"]["p50"] < 90 and 30 < watch["on_ms"]["p50"] < 90  # 50 ms a frame at 20 fps
    assert watch["plain_ms"]["work"] < 25 and watch["verdict"].startswith("?")


def test_everything_but_one_part_turns_on_all_the_others(tiny_run: Path, tmp_path: Path) -> None:
    """--attribution: everything-but-X is everything's camera options without X's (and nothing else missing)."""
    sys.path.insert(0, str(Path(__file__).parents[1] / "benchmarks"))
    try:
        import _features as f
    finally:
        sys.path.pop(0)
    from edgeclf.edge.model import Classifier

    class Broker:  # only its address is read here; the benchmark starts a real mosquitto
        @staticmethod
        def url() -> str:
            return "mqtt://127.0.0.1:1883/edgeclf"

    clf = Classifier.load(tiny_run / "bundles" / "32-int8")
    with_clf, every = f.feature_options("everything", clf, Broker(), tmp_path, 0)
    assert with_clf is clf and {"smooth", "capture", "mqtt", "serve", "shadow", "reload"} <= set(every)
    for part, keys in {"shadow": {"shadow", "shadow_every"}, "mqtt": {"mqtt"}, "serve": {"serve"},
                       "capture": {"capture"}, "watch": {"reload"}, "decide": {"smooth", "events_filter"}}.items():
        got_clf, but = f.feature_options(f"everything-but-{part}", clf, Broker(), tmp_path, 0)
        assert set(every) - set(but) == keys, part
        assert (got_clf is None) == (part == "decide")


def test_edge_frame_cost_features_are_paired_rounds(tiny_run: Path, tmp_path: Path) -> None:
    res = _script("edge_frame_cost", "--run", str(tiny_run), "--bundle", "32-int8", "--frames", "6", "--repeats", "2",
                  "--no-keras", "--features", "capture,watch,stream", tmp=tmp_path)
    feats = res["features"]["32-int8"]
    assert list(feats) == ["capture", "stream", "watch"]  # in FEATURES order
    for f in feats.values():
        for m in ("p50", "mean", "work"):
            s = f[m]
            assert s["n"] == 2 and s["min"] <= s["lo"] <= s["median"] <= s["hi"] <= s["max"]
        assert f["verdict"].startswith("?")  # 2 rounds are too few for a verdict
    r = subprocess.run([sys.executable, str(Path(__file__).parents[1] / "benchmarks" / "edge_frame_cost.py"),
                        "--run", str(tiny_run), "--features", "capture,nope"], capture_output=True, text=True, timeout=120)
    assert r.returncode != 0 and "unknown nope" in r.stderr


def test_train_trunk_script_compares_tflite_with_tensorflow(tmp_path: Path) -> None:
    """The trunk, cut as a run cuts it, on TensorFlow and converted to TFLite: the same features, timed both ways."""
    data = write_color_folders(tmp_path / "data", n_per_class=8, size=48)
    res = _script("train_trunk", "--data", str(data), "--size", "64", "--limit", "16", "--views", "1", "--rounds", "1",
                  "--weights", "none", tmp=tmp_path)
    assert res["images"] == 16 and res["views"] == 1
    rows = res["results"]
    assert len(rows) == 3 and all(k.startswith("64 ") for k in rows)
    tf_row = next(v for k, v in rows.items() if "TensorFlow" in k)
    assert tf_row["piped_speed_vs_tf"] == 1.0 and tf_row["max_abs_diff"] == 0.0 and tf_row["convert_s"] == 0.0
    for k, v in rows.items():
        assert v["alone_ms_img"] > 0 and len(v["piped_ms_img"]) == 1 and v["piped_ms_img"][0] > 0
        if "TFLite" in k:  # converted for real, and computing the same features
            assert v["convert_s"] > 0 and v["max_abs_diff"] < 1e-4
