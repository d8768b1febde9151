"""The interval the tool prints: a bootstrap over groups, checked on confusions whose answer is known."""

from __future__ import annotations

import numpy as np
import pytest

from edgeclf.metrics import MIN_GROUPS, bootstrap_interval, evaluate, reliability


def test_group_bootstrap_on_a_known_confusion() -> None:
    # 10 subjects of 10 images: 9 always right, 1 always wrong. Resampling subjects, the number of wrong ones
    # in a draw of 10 is Binomial(10, 0.1): P(X >= 4) = 0.013 < 2.5 % < P(X >= 3) = 0.070, P(X = 0) = 0.35.
    correct = np.repeat([True] * 9 + [False], 10)
    groups = np.repeat([f"s{i}" for i in range(10)], 10)
    iv = bootstrap_interval(correct, list(groups))
    assert iv.accuracy == 0.9 and iv.low == pytest.approx(0.7) and iv.high == pytest.approx(1.0)
    assert iv.n_groups == 10 and iv.n_images == 100 and iv.enough
    # The same answers counted as 100 independent images give a far narrower (wrong) interval.
    naive = bootstrap_interval(correct, [str(i) for i in range(100)])
    assert naive.high - naive.low < 0.5 * (iv.high - iv.low)


def test_stratified_bootstrap_keeps_each_class_share() -> None:
    # class 0: 10 subjects all right; class 1: 10 subjects, half wrong. Stratified draws keep 10 of each.
    correct = np.array([True] * 20 + [True] * 10 + [False] * 10)
    groups = [f"a{i // 2}" for i in range(20)] + [f"b{i // 2}" for i in range(20)]
    labels = [0] * 20 + [1] * 20
    iv = bootstrap_interval(correct, groups, labels, n_boot=4000, seed=1)
    assert iv.accuracy == 0.75 and 0.6 <= iv.low < 0.75 < iv.high <= 0.9


def test_too_few_groups_is_said_not_hidden() -> None:
    iv = bootstrap_interval([True] * 30, [f"g{i % 4}" for i in range(30)])
    assert iv.accuracy == 1.0 and not iv.enough and f"at least {MIN_GROUPS}" in iv.note
    assert "?" in iv.text()
    one_class_group = bootstrap_interval([True] * 24, [f"g{i % 11}" for i in range(22)] + ["h0", "h0"],
                                         [0] * 22 + [1] * 2)
    assert not one_class_group.enough and "per class" in one_class_group.note


def test_bootstrap_is_deterministic_per_seed() -> None:
    rng = np.random.default_rng(0)
    c, g = rng.random(200) > 0.3, [f"g{i % 25}" for i in range(200)]
    assert bootstrap_interval(c, g, seed=3) == bootstrap_interval(c, g, seed=3)


def test_evaluate_per_class_confusion_and_calibration() -> None:
    probs = np.array([[0.9, 0.1], [0.8, 0.2], [0.4, 0.6], [0.3, 0.7], [0.55, 0.45]])
    ev = evaluate(probs, [0, 0, 0, 1, 1], ["a", "b", "c", "d", "e"], ("cat", "dog"))
    assert ev.confusion == ((2, 1), (1, 1))
    assert ev.per_class["cat"] == {"precision": round(2 / 3, 4), "recall": round(2 / 3, 4), "support": 3}
    assert ev.top1.accuracy == 0.6
    sig = evaluate(np.array([[0.1], [0.2], [0.6], [0.7], [0.45]]), [0, 0, 0, 1, 1], list("abcde"), ("cat", "dog"))
    assert sig.confusion == ev.confusion  # one sigmoid reads as P(second label)


def test_reliability_of_a_calibrated_and_an_overconfident_model() -> None:
    rng = np.random.default_rng(0)
    conf = rng.uniform(0.5, 1.0, 20000)
    ece_good, _ = reliability(conf, rng.random(20000) < conf)
    ece_bad, bins = reliability(np.full(20000, 0.99), rng.random(20000) < 0.7)
    assert ece_good < 0.02 and ece_bad == pytest.approx(0.29, abs=0.02) and bins[-1]["n"] == 20000
