"""`edgeclf convert` writes self-test sample frames into each bundle (issue #14 part 6), and the camera's
self-test (edgeclf.edge.reload.self_test) passes on them and fails on a damaged or untrue bundle."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from typer.testing import CliRunner

from edgeclf.bundle import MANIFEST_FILE, load_bundle, write_bundle
from edgeclf.cli import app
from edgeclf.convert import ConvertConfig, convert_run, kinds_from_names
from edgeclf.edge.model import Classifier
from edgeclf.edge.reload import self_test
from edgeclf.errors import BundleError
from edgeclf.imageio import decode_bgr
from edgeclf.samples import sample_bytes

from .runfixture import tiny_run_template  # noqa: F401  (fixture)

pytestmark = pytest.mark.xdist_group("convert")


@pytest.fixture(scope="module")
def converted(tiny_run_template: Path, tmp_path_factory) -> list[Path]:
    import shutil

    run = tmp_path_factory.mktemp("samples") / "run"
    shutil.copytree(tiny_run_template, run)
    res = convert_run(run, ConvertConfig(kinds=kinds_from_names(["float32", "int8"], None, 30), sizes=(24,)))
    return [r.path for r in res.results]


def test_each_bundle_carries_samples_and_passes_its_self_test(converted: list[Path]) -> None:
    for path in converted:
        b = load_bundle(path)
        s = b.manifest.samples
        assert s is not None and len(s.items) == 4 and s.tolerance == 0.05
        assert sorted(p.name for p in (path / "samples").iterdir()) == [f"{i}.png" for i in range(4)]
        clf = Classifier.load(path, quiet=True)
        for item in s.items:
            img = decode_bgr(sample_bytes(path, item), item.file)
            assert img.shape[2] == 3 and max(img.shape[:2]) <= 96
            np.testing.assert_allclose(clf(img), item.probs, atol=1e-5)  # what the edge itself answers
            assert len(item.probs) == len(b.manifest.labels)
        assert self_test(clf).startswith("passed: 4 sample frame(s)")
    r = CliRunner().invoke(app, ["info", str(converted[-1]), "--check"])
    assert r.exit_code == 0 and "self-test: passed: 4 sample frame(s)" in r.output, r.output
    labels = {round(item.probs[1]) for item in load_bundle(converted[0]).manifest.samples.items}
    assert labels == {0, 1}  # both classes among the samples


def test_self_test_refuses_damaged_or_untrue_samples(converted: list[Path], tmp_path: Path) -> None:
    import shutil

    b = tmp_path / "b"
    shutil.copytree(converted[0], b)
    (b / "samples" / "1.png").write_bytes((b / "samples" / "0.png").read_bytes())  # a sample swapped
    with pytest.raises(BundleError, match=r"samples/1.png: sha256 does not match"):
        self_test(Classifier.load(b, quiet=True))
    shutil.rmtree(b)
    shutil.copytree(converted[0], b)
    m = json.loads((b / MANIFEST_FILE).read_text())
    m["samples"]["items"][0]["probs"] = [0.5, 0.5]
    (b / MANIFEST_FILE).write_text(json.dumps(m))
    with pytest.raises(BundleError, match="does not behave as converted"):
        self_test(Classifier.load(b, quiet=True))
    r = CliRunner().invoke(app, ["info", str(b), "--check"])
    assert r.exit_code == 1 and "does not behave as converted" in r.output.strip().splitlines()[-1]
    m["samples"]["items"][0]["file"] = "../model.tflite"
    (b / MANIFEST_FILE).write_text(json.dumps(m))
    with pytest.raises(BundleError, match=r"samples.items\[0\].file: expected samples/<name>.png"):
        load_bundle(b)


def test_bundles_without_samples_load_and_skip_the_self_test(converted: list[Path], tmp_path: Path) -> None:
    from dataclasses import replace

    old = load_bundle(converted[0])
    write_bundle(tmp_path / "old", old.model_bytes, replace(old.manifest, samples=None))
    assert "samples" not in json.loads((tmp_path / "old" / MANIFEST_FILE).read_text())
    assert self_test(Classifier.load(tmp_path / "old", quiet=True)).startswith("skipped")
    with pytest.raises(BundleError, match="sample files given do not match"):
        write_bundle(tmp_path / "x", old.model_bytes, old.manifest)  # samples listed but not given
