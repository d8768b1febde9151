"""`edgeclf eval` and the camera-sim frames, with real bundles, real files and a real video through OpenCV."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from edgeclf.camsim import CameraSim, frames, read_video_labels, write_video
from edgeclf.cli import app

from .edge.fixtures import Bundles, get_bundles

runner = CliRunner()


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> Bundles:
    return get_bundles(tmp_path_factory)


@pytest.fixture()
def colour_set(bundles: Bundles, tmp_path: Path) -> Path:
    """A folder-per-class test set for the rgb bundles: blue/, green/, red/ (copies: shared data stays read-only)."""
    root = tmp_path / "set"
    for f in sorted(bundles.images.glob("color-*.png")):
        label = f.stem[len("color-"):-1]
        (root / label).mkdir(parents=True, exist_ok=True)
        shutil.copy(f, root / label / f.name)
    return root


def _classify_labels(bundle: Path, folder: Path) -> dict[str, str]:
    r = runner.invoke(app, ["classify", str(bundle), str(folder), "--json"])
    assert r.exit_code == 0, r.output
    rows = [json.loads(x) for x in r.output.splitlines() if x.startswith("{")]
    return {Path(x["file"]).name: x["label"] for x in rows}


@pytest.mark.parametrize("name", ["rgb32-int8", "rgb32-float32"])
def test_eval_on_a_bundle_equals_classify_on_the_same_files(bundles: Bundles, colour_set: Path, tmp_path: Path,
                                                           name: str) -> None:
    bundle = bundles.path(name)
    out = tmp_path / "report"
    r = runner.invoke(app, ["eval", str(bundle), str(colour_set), "--out", str(out), "--json"])
    assert r.exit_code == 0, r.output
    report = json.loads(r.output.strip().splitlines()[-1])
    with open(out / "predictions.csv") as fh:
        predicted = {Path(row["file"]).name: row["predicted"] for row in csv.DictReader(fh)}
    assert predicted == _classify_labels(bundle, colour_set)  # classify accepts the class-folder set too
    truth = {n: n[len("color-"):-5] for n in predicted}
    acc = sum(predicted[n] == truth[n] for n in predicted) / len(predicted)
    assert report["top1"]["accuracy"] == pytest.approx(acc)
    assert sum(map(sum, report["confusion"])) == len(predicted) == report["top1"]["n_images"]
    assert not report["top1"]["enough"]  # 6 files, no groups: the tool says the figure means little
    for f in ("eval.json", "predictions.csv", "confusion.png", "reliability.png"):
        assert (out / f).stat().st_size > 0
    assert cv2.imread(str(out / "confusion.png")) is not None


def test_eval_text_report_and_bad_folder(bundles: Bundles, colour_set: Path) -> None:
    bundle = bundles.path("rgb32-int8")
    r = runner.invoke(app, ["eval", str(bundle), str(colour_set)])
    assert r.exit_code == 0 and "top-1 accuracy" in r.output and "95 % interval" in r.output
    assert "note:" in r.output  # too few groups for a meaningful figure, said plainly
    (colour_set / "purple").mkdir()
    r = runner.invoke(app, ["eval", str(bundle), str(colour_set)])
    assert r.exit_code != 0 and "'purple'" in r.output and "not labels of the model" in r.output
    assert "Traceback" not in r.output


def test_camera_sim_is_deterministic_per_seed(bundles: Bundles) -> None:
    items = [(str(p), 0) for p in sorted(bundles.images.glob("horse*.png"))]
    a = [f.frame for f in frames(items, CameraSim(seed=5), per_image=2)]
    b = [f.frame for f in frames(items, CameraSim(seed=5), per_image=2)]
    c = [f.frame for f in frames(items, CameraSim(seed=6), per_image=2)]
    assert len(a) == 2 * len(items) and all(x.shape == (480, 640, 3) and x.dtype == np.uint8 for x in a)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not any(np.array_equal(x, y) for x, y in zip(a, c))
    assert not np.array_equal(a[0], a[1])  # two frames of one image differ


def test_camera_sim_threads_draw_the_frames_one_thread_draws(bundles: Bundles) -> None:
    """frames() draws items on worker threads, a few ahead: same frames, order, labels and indices as one thread."""
    items = [(str(p), i % 2) for i, p in enumerate(sorted(bundles.images.glob("*.png")))]
    assert len(items) >= 6
    one = list(frames(items, CameraSim(seed=5), per_image=2, workers=1))
    three = list(frames(items, CameraSim(seed=5), per_image=2, workers=3))
    assert [(f.label, f.source, f.index) for f in three] == [(f.label, f.source, f.index) for f in one]
    assert all(np.array_equal(x.frame, y.frame) for x, y in zip(one, three, strict=True))
    gen = frames(items, CameraSim(seed=5), workers=3)
    assert np.array_equal(next(gen).frame, one[0].frame)
    gen.close()  # a consumer that stops early: the workers finish what they started, nothing hangs


def test_camera_sim_video_round_trips_through_camera(bundles: Bundles, colour_set: Path, tmp_path: Path) -> None:
    bundle = bundles.path("rgb32-int8")
    video = tmp_path / "sim.avi"
    r = runner.invoke(app, ["eval", str(bundle), str(colour_set), "--camera-sim", "--frames-per-image", "2",
                            "--video", str(video), "--json"])
    assert r.exit_code == 0, r.output
    report = json.loads(r.output.strip().splitlines()[-1])
    truth = read_video_labels(video)
    assert len(truth) == 12 == report["top1"]["n_images"] and set(truth) == {"blue", "green", "red"}
    cap = cv2.VideoCapture(str(video))
    n = 0
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        assert frame.shape == (480, 640, 3)
        n += 1
    assert n == 12
    events = tmp_path / "events.jsonl"
    r = runner.invoke(app, ["camera", str(bundle), "--source", str(video), "--events", str(events)])
    assert r.exit_code == 0, r.output
    summary = [json.loads(x) for x in events.read_text().splitlines() if '"summary"' in x][-1]
    assert summary["frames"] == 12


def test_write_video_refuses_an_empty_set(tmp_path: Path) -> None:
    from edgeclf.errors import UsageError

    with pytest.raises(UsageError, match="no frames"):
        write_video(iter(()), tmp_path / "x.avi", ["a", "b"])
    assert not (tmp_path / "x.avi").exists()
