"""The feature cache (`--feature-views`, train/featcache.py): the frozen trunk runs once per augmented view and
the epochs train the top on those features. The top must be the full model above the cut (the same layers and
weights, the same outputs), every epoch must see one whole view, and a run killed and resumed inside the
fine-tuning phase must end where the uninterrupted run ends."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from .conftest import REPO, kill_after_epoch, write_color_folders

SIZE = 32


def test_the_top_is_the_full_model_above_the_cut() -> None:
    from edgeclf.train.archs import build_model
    from edgeclf.train.backbones import BACKBONES
    from edgeclf.train.featcache import split

    model = build_model("efficientnet-lite0", 64, 3, weights=None, frozen_bn=True)
    sp = split(model, BACKBONES["efficientnet-lite0"].blocks, 3)
    assert sp is not None and sp.cut == "block6c_expand_conv"
    x = np.random.default_rng(0).random((4, 64, 64, 3), dtype=np.float32)
    whole = np.asarray(model(x, training=False))
    via = np.asarray(sp.top(sp.forward(x), training=False))
    np.testing.assert_allclose(via, whole, rtol=0, atol=1e-6)
    ids = {id(v) for v in model.weights}
    assert sp.top.weights and all(id(v) in ids for v in sp.top.weights)  # training the top trains the model
    assert not any(id(v) in {id(w) for w in sp.trunk.weights} for v in sp.top.weights)
    head_only = split(model, BACKBONES["efficientnet-lite0"].blocks, 0)
    assert head_only.cut == "" and tuple(head_only.top.inputs[0].shape[1:]) == (2, 2, 1280)


def test_each_epoch_trains_on_one_whole_view_reshuffled() -> None:
    from edgeclf.train.featcache import Features, epoch_order

    n, views = 10, 3
    f = Features(np.zeros((n * views, 1)), np.zeros(n * views), views, n)
    orders = [epoch_order(f, 7, e) for e in range(6)]
    for e, rows in enumerate(orders):
        assert sorted(rows) == list(range((e % views) * n, (e % views + 1) * n))
    assert not np.array_equal(orders[0] % n, orders[3] % n)  # the same view, in another order
    assert np.array_equal(orders[4], epoch_order(f, 7, 4)) and not np.array_equal(orders[4], epoch_order(f, 8, 4))


def _train(data: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "edgeclf", "-q", "train", str(data), "--out", str(out), "--size", str(SIZE),
            "--epochs", "3", "--head-epochs", "1", "--feature-views", "2", "--batch-size", "8", "--seed", "5",
            "--backup-every", "0"]


def _history(run: Path) -> list[tuple[str, str, str]]:
    return [(r["epoch"], r["loss"], r["val_loss"]) for r in csv.DictReader((run / f"history-{SIZE}.csv").open())]


def test_a_cached_run_killed_while_fine_tuning_resumes_to_the_same_model(tmp_path: Path) -> None:
    from edgeclf.train.modelio import load_keras

    data = write_color_folders(tmp_path / "data", n_per_class=30, size=48)
    whole = tmp_path / "whole"
    r = subprocess.run(_train(data, whole), cwd=REPO, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-2000:]
    result = json.loads((whole / "state" / str(SIZE) / "state.json").read_text())["result"]
    assert result["feature_views"] == 2 and 0 < result["feature_cache_seconds"] < result["train_seconds"]

    killed = tmp_path / "killed"
    state_file = killed / "state" / str(SIZE) / "state.json"
    if kill_after_epoch(_train(data, killed), state_file, 2, REPO) != 2:
        pytest.fail("the kill did not land in epoch 3 (the second fine-tuning epoch)")
    r = subprocess.run([sys.executable, "-m", "edgeclf", "-q", "train", "--resume", str(killed)], cwd=REPO,
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-2000:]
    assert _history(killed) == _history(whole)
    a = load_keras(killed / "models" / f"{SIZE}.keras").weights
    b = load_keras(whole / "models" / f"{SIZE}.keras").weights
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_negative_feature_views_is_one_clear_line(tmp_path: Path) -> None:
    r = subprocess.run([sys.executable, "-m", "edgeclf", "train", str(tmp_path), "--feature-views", "-1"], cwd=REPO,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode != 0 and "--feature-views -1" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_views_are_cut_to_the_memory_budget_and_none_fit_means_no_cache() -> None:
    from edgeclf.train.featcache import FEATURE_BUDGET, views_that_fit

    shape = (10, 10, 192)  # 300 px, below the top 3 blocks of Lite0: 76.8 KB per image and view
    per_view = 1000 * 10 * 10 * 192 * 4
    assert views_that_fit(6, 1000, shape) == min(6, FEATURE_BUDGET // per_view)
    assert views_that_fit(6, 100, shape) == 6
    assert views_that_fit(6, FEATURE_BUDGET // (10 * 10 * 192 * 4) + 1, shape) == 0  # the run trains uncached


def test_a_warm_started_size_caches_its_own_number_of_views(tmp_path: Path) -> None:
    """`--warm-feature-views`: the size that starts from the smaller one's model caches its own views."""
    data = write_color_folders(tmp_path / "data", n_per_class=20, size=48)
    run = tmp_path / "run"
    r = subprocess.run([sys.executable, "-m", "edgeclf", "-q", "train", str(data), "--out", str(run), "--size",
                        str(SIZE), "--size", "40", "--epochs", "2", "--head-epochs", "1", "--warm-epochs", "2", "--feature-views",
                        "2", "--warm-feature-views", "1", "--batch-size", "8", "--seed", "5", "--backup-every", "0"],
                       cwd=REPO, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-2000:]
    views = {s: json.loads((run / "state" / str(s) / "state.json").read_text())["result"]["feature_views"]
             for s in (SIZE, 40)}
    assert views == {SIZE: 2, 40: 1}
    assert json.loads((run / "config.json").read_text())["warm_feature_views"] == 1
