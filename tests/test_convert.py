"""`edgeclf convert`: real converter, real interpreter, on a tiny trained run (tests/runfixture.py)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import List, Optional

import numpy as np
import pytest
from typer.testing import CliRunner

from edgeclf.bundle import load_bundle
from edgeclf.cli import app
from edgeclf.cli.convert import expand_bare_quantize
from edgeclf.convert import ConvertConfig, QuantizationKind, convert_run, kinds_from_names
from edgeclf.convert.data import calibration_sample
from edgeclf.errors import UsageError
from edgeclf.rundir import RunDir

from .runfixture import make_run, tiny_run, tiny_run_template  # noqa: F401  (fixtures)

pytestmark = pytest.mark.xdist_group("convert")
runner = CliRunner()
SIZE = 24


def _invoke(bundle_dir: Path, x: np.ndarray) -> tuple[np.ndarray, dict, dict]:
    """Load a written bundle (sha checked) on ai-edge-litert and run one preprocessed image."""
    from ai_edge_litert.interpreter import Interpreter

    b = load_bundle(bundle_dir)
    it = Interpreter(model_content=b.model_bytes)
    it.allocate_tensors()
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    if b.manifest.input.quantized:
        q = np.round(x / b.manifest.input.scale + b.manifest.input.zero_point)
        info = np.iinfo(inp["dtype"])
        x = np.clip(q, info.min, info.max).astype(inp["dtype"])
    it.set_tensor(inp["index"], x.astype(inp["dtype"]))
    it.invoke()
    return it.get_tensor(out["index"]), inp, out


def _one_image(run: Path, size: int) -> np.ndarray:
    from edgeclf.convert.data import load_images

    info, split = RunDir(run).read_info(), RunDir(run).read_split()
    rel, label = split.val[0]
    return load_images([(Path(info.data_dir) / rel, label)], info.models[size].preprocess)


def test_every_kind_converts_loads_and_fills_the_manifest(tiny_run: Path) -> None:
    kinds = kinds_from_names(["float32", "float16", "dynamic", "int8"], None, 50)
    # the converter's own output: the TFLite metadata and the two-class head (1-2 KB each) would blur the size
    # ratios of a 16 KB model; tests/test_ecosystem.py covers both defaults
    res = convert_run(tiny_run, ConvertConfig(kinds=kinds, sizes=(SIZE,), metadata=False, binary_output="sigmoid"))
    by = {r.kind.name: r for r in res.results}
    assert list(by) == ["float32", "float16", "dynamic", "int8"]
    x = _one_image(tiny_run, SIZE)
    for kind, r in by.items():
        assert r.status == "ok" and r.path == tiny_run / "bundles" / f"{SIZE}-{kind}"
        y, _, _ = _invoke(r.path, x)
        assert y.shape == (1, 1)
        m = load_bundle(r.path).manifest
        assert m.labels == ("blue", "red") and m.task == "binary" and m.positive_label == "red"
        assert m.binary_output == "sigmoid" and m.num_outputs == 1
        assert (m.preprocess.height, m.preprocess.width, m.preprocess.scale) == (SIZE, SIZE, 1 / 255)
        assert m.source.quantization == kind and m.source.arch == "tiny" and m.source.size == SIZE
        assert set(m.to_dict()["metrics"]) >= {"accuracy", "keras_accuracy", "delta_pp", "agreement", "mean_abs_diff", "n"}
        assert m.metrics.n == len(RunDir(tiny_run).read_split().val)
        assert m.runtimes["ai-edge-litert"].loads is True
        assert m.size_bytes == r.size_bytes
    # int8 io is uint8 by default; float kinds keep float32 io
    assert load_bundle(by["int8"].path).manifest.input.dtype == "uint8"
    assert load_bundle(by["float16"].path).manifest.input.dtype == "float32"
    # quantization shrinks the file (less on this 16-feature net since the feature-distance output: its ten small
    # tensors' quantization parameters are a fixed cost, 0.68 of float32 here)
    assert by["int8"].size_bytes < 0.75 * by["float32"].size_bytes
    assert by["float16"].size_bytes < by["float32"].size_bytes
    # the op-version reader's verdict is in the manifest: today's dynamic-range FC needs v12
    m_dyn = load_bundle(by["dynamic"].path).manifest
    assert m_dyn.runtimes["tflite-runtime-2.14"].loads is False
    assert "FULLY_CONNECTED v12" in m_dyn.runtimes["tflite-runtime-2.14"].why
    assert load_bundle(by["int8"].path).manifest.runtimes["tflite-runtime-2.14"].loads is True
    # a trained colour task: the variants agree with Keras
    assert all(r.metrics.agreement >= 0.8 and r.metrics.keras_accuracy >= 0.8 for r in res.results)
    # variants.json and the plot
    table = json.loads(res.variants_json.read_text())
    assert [v["variant"] for v in table["variants"]] == [f"{SIZE}-{k}" for k in by]
    assert res.plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("io_dtype", ["uint8", "int8", "float32"])
def test_int8_io_dtype_is_what_was_asked(tiny_run: Path, io_dtype: str) -> None:
    kinds = kinds_from_names(["int8"], io_dtype, 20)
    (r,) = convert_run(tiny_run, ConvertConfig(kinds=kinds, sizes=(SIZE,))).results
    y, inp, out = _invoke(r.path, _one_image(tiny_run, SIZE))
    assert np.dtype(inp["dtype"]).name == io_dtype and np.dtype(out["dtype"]).name == io_dtype
    m = load_bundle(r.path).manifest
    assert m.input.dtype == io_dtype and m.output.dtype == io_dtype and m.source.io_dtype == io_dtype
    if io_dtype != "float32":
        assert m.input.scale == pytest.approx(inp["quantization"][0]) and m.input.zero_point == inp["quantization"][1]
        assert m.output.scale == pytest.approx(out["quantization"][0])
    assert r.path.name == (f"{SIZE}-int8" if io_dtype == "uint8" else f"{SIZE}-int8-{io_dtype}io")


def test_manifest_sha256_matches_the_file(tiny_run: Path) -> None:
    res = convert_run(tiny_run, ConvertConfig(kinds=(QuantizationKind.for_float16(),)))
    assert [r.size for r in res.results] == [32, 24]  # every size the run trained, largest first
    for r in res.results:
        digest = hashlib.sha256((r.path / "model.tflite").read_bytes()).hexdigest()
        assert load_bundle(r.path).manifest.sha256 == digest == r.sha256


def test_multiclass_softmax_int8(tmp_path: Path) -> None:
    run = make_run(tmp_path, classes=("blue", "green", "red"), sizes=(SIZE,), epochs=15)
    (r,) = convert_run(run, ConvertConfig(kinds=(QuantizationKind.for_int8(calibration=30),))).results
    m = load_bundle(r.path).manifest
    assert m.task == "multiclass" and m.positive_label is None and m.labels == ("blue", "green", "red")
    y, _, _ = _invoke(r.path, _one_image(run, SIZE))
    assert y.shape == (1, 3)
    assert r.metrics.agreement >= 0.8


def test_gate_rejects_when_impossibly_tight_and_cli_exits_nonzero(tiny_run: Path) -> None:
    args = ["convert", str(tiny_run), "--quantize", "float16", "--size", str(SIZE)]
    r = runner.invoke(app, args + ["--max-drop", "-1"])
    assert r.exit_code == 1, r.output
    assert "rejected" in r.output and "failed the accuracy gate" in r.output and "--allow-drop" in r.output
    assert not (tiny_run / "bundles" / f"{SIZE}-float16").exists()
    assert json.loads((tiny_run / "bundles" / "variants.json").read_text())["variants"][0]["status"] == "rejected"
    r = runner.invoke(app, args + ["--max-drop", "-1", "--allow-drop"])
    assert r.exit_code == 0, r.output
    assert load_bundle(tiny_run / "bundles" / f"{SIZE}-float16").manifest.metrics.status == "allowed"
    r = runner.invoke(app, args)  # default 1.0 pp: float16 keeps the accuracy
    assert r.exit_code == 0 and "ok" in r.output


def test_bare_quantize_means_int8_through_the_cli(tiny_run: Path) -> None:
    r = runner.invoke(app, ["convert", str(tiny_run), "--quantize", "--calibration", "20"])
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in (tiny_run / "bundles").iterdir() if p.is_dir()) == ["24-int8", "32-int8"]
    r = runner.invoke(app, ["convert", "--quantize", str(tiny_run), "--size", "24", "--runtime", "tflite-runtime",
                            "--quantize", "dynamic"])
    assert r.exit_code == 0, r.output
    assert "24-dynamic will not load on tflite-runtime 2.14" in r.output and "pick 24-int8 instead" in r.output


def test_expand_bare_quantize() -> None:
    assert expand_bare_quantize(["run", "--quantize"]) == ["run", "--quantize", "int8"]
    assert expand_bare_quantize(["run", "--quantize", "--size", "150"]) == \
        ["run", "--quantize", "int8", "--size", "150"]
    assert expand_bare_quantize(["--quantize", "runs/train-1"]) == ["--quantize", "int8", "runs/train-1"]
    assert expand_bare_quantize(["r", "--quantize", "int8", "--quantize", "float16"]) == \
        ["r", "--quantize", "int8", "--quantize", "float16"]
    assert expand_bare_quantize(["r", "--quantize", "in8"]) == ["r", "--quantize", "in8"]  # reaches the kind check
    assert expand_bare_quantize(["--", "--quantize"]) == ["--", "--quantize"]


def test_click_still_cannot_parse_an_optional_value() -> None:
    """Why expand_bare_quantize exists: typer's click has no option whose value may be left out. When this
    fails, typer can express `--quantize [KIND]` itself: drop the rewrite (edgeclf/cli/convert.py)."""
    import typer

    optional_app = typer.Typer()

    @optional_app.command()
    def cmd(run: str, quantize: Optional[List[str]] = typer.Option(None, "--quantize", is_flag=False,
                                                                    flag_value="int8")) -> None:
        typer.echo(f"{run} {quantize}")

    @optional_app.command()
    def other() -> None:
        pass

    r = runner.invoke(optional_app, ["cmd", "r", "--quantize"])
    assert r.exit_code == 2 and "requires an argument" in r.output
    r = runner.invoke(optional_app, ["cmd", "r", "--quantize", "float16"])
    assert r.exit_code == 0 and "r ['float16']" in r.output  # with a value it parses: the check itself is sound


@pytest.mark.parametrize("args,message", [
    (["--quantize", "in8"], "'in8' is not a quantization kind; expected one of float32, float16, dynamic, int8"),
    (["--quantize", "float16", "--io-dtype", "int8"], "--io-dtype int8 applies to full-integer models only"),
    (["--quantize", "--io-dtype", "int4"], "--io-dtype 'int4' is not supported"),
    (["--quantize", "--calibration", "0"], "--calibration 0 is out of range"),
    (["--size", "150"], "--size 150: the run"),
    (["--runtime", "tflite"], "--runtime 'tflite' is not supported"),
])
def test_bad_options_are_one_line_before_any_work(tmp_path: Path, tiny_run_template: Path, args, message) -> None:
    r = runner.invoke(app, ["convert", str(tiny_run_template), *args, "--out", str(tmp_path / "b")])
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    assert r.exit_code == 2 and len(lines) == 1 and message in lines[0], r.output
    assert not (tmp_path / "b").exists()


def test_kinds_are_validated_named_constructors() -> None:
    assert QuantizationKind.for_int8() == QuantizationKind("int8", "uint8", 300)
    assert QuantizationKind.for_dynamic().name == "dynamic" and not QuantizationKind.for_float16().needs_data
    assert kinds_from_names([], None, 300) == (QuantizationKind.for_float32(),)
    assert kinds_from_names(["int8", "INT8", "float16"], "int8", 10) == (QuantizationKind.for_int8("int8", 10),
                                                                         QuantizationKind.for_float16())
    with pytest.raises(UsageError, match="needs full-integer"):
        QuantizationKind("float16", io_dtype="uint8")


def test_calibration_sample_is_stratified() -> None:
    items = [(Path(f"a{i}"), 0) for i in range(300)] + [(Path(f"b{i}"), 1) for i in range(100)]
    picked = calibration_sample(items, 40)
    labels = [label for _, label in picked]
    assert len(picked) == 40 and len(set(picked)) == 40
    assert labels.count(0) == 30 and labels.count(1) == 10
    assert calibration_sample(items, 40) == picked  # deterministic
    assert calibration_sample(items[:5], 40) == items[:5]


def test_converter_noise_is_hidden_unless_verbose(tiny_run: Path) -> None:
    import subprocess
    import sys

    from .conftest import REPO

    cmd = [sys.executable, "-m", "edgeclf", "convert", str(tiny_run), "--quantize", "--size", "24",
           "--calibration", "10"]
    quiet = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=REPO)
    assert quiet.returncode == 0, quiet.stderr
    noise = ("fully_quantize", "XNNPACK", "W0000", "I0000", "absl")
    assert not [n for n in noise if n in quiet.stderr + quiet.stdout], quiet.stderr
    assert "24-int8" in quiet.stdout and "variants.json" in quiet.stdout
    loud = subprocess.run(cmd[:3] + ["-v"] + cmd[3:], capture_output=True, text=True, timeout=300, cwd=REPO)
    assert loud.returncode == 0 and any(n in loud.stderr for n in noise), loud.stderr
