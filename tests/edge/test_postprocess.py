"""Postprocessing (top-k, threshold, smoothing with hysteresis) and the run statistics."""

from __future__ import annotations

import numpy as np
import pytest

from edgeclf.edge.postprocess import SmoothConfig, Smoother, answer, top_k
from edgeclf.edge.stats import Histogram, RunStats, format_summary
from edgeclf.errors import UsageError

# The whole edge suite runs again in the tflite-runtime 2.14 venv (scripts/test.sh).
pytestmark = pytest.mark.tflite_runtime

LABELS = ("cat", "dog")


def _binary(p_dog: float) -> np.ndarray:
    return np.array([1 - p_dog, p_dog], np.float32)


def _labels(smoother: Smoother, seq: list[float]) -> list[str]:
    return [smoother.update(_binary(p)).label for p in seq]


def test_top_k_and_threshold() -> None:
    probs = np.array([0.1, 0.6, 0.3], np.float32)
    assert top_k(probs, ("a", "b", "c"), 2) == [("b", pytest.approx(0.6)), ("c", pytest.approx(0.3))]
    assert len(top_k(probs, ("a", "b", "c"), 10)) == 3
    assert answer(probs, ("a", "b", "c"), 0.5)[0] == "b"
    assert answer(probs, ("a", "b", "c"), 0.7) == ("uncertain", pytest.approx(0.6))


def test_top_k_orders_as_numpys_stable_argsort_for_few_and_many_labels() -> None:
    """The few-label path (Python's sort) and the many-label one (numpy) agree: ties by index, -0.0 = 0.0, nan last."""
    rng = np.random.default_rng(3)
    for n in (2, 3, 64, 65):
        labels = tuple(f"c{i}" for i in range(n))
        for trial in range(300):
            probs = rng.choice(np.array([0.0, -0.0, 0.25, 1 / 3, 0.5, 1.0], np.float32), n)
            if trial % 2:
                probs = rng.random(n).astype(np.float32)
            if trial % 10 == 0:
                probs[rng.integers(n)] = np.nan
            order = np.argsort(-probs, kind="stable")[:3]
            want = [(labels[i], probs[i].tobytes()) for i in order]
            assert [(lab, np.float32(p).tobytes()) for lab, p in top_k(probs, labels, 3)] == want


def test_hysteresis_stops_flicker_around_the_boundary() -> None:
    wobble = [0.8, 0.48, 0.53, 0.47, 0.54, 0.46, 0.2, 0.7]
    assert _labels(Smoother(LABELS, SmoothConfig(hysteresis=0.0)), wobble) == \
        ["dog", "cat", "dog", "cat", "dog", "cat", "cat", "dog"]
    # With a lead of more than 0.1 required (p below 0.45 or above 0.55), the wobble around 0.5 is ignored.
    assert _labels(Smoother(LABELS, SmoothConfig(hysteresis=0.1)), wobble) == \
        ["dog", "dog", "dog", "dog", "dog", "dog", "cat", "dog"]


def test_moving_average_and_majority() -> None:
    mean = Smoother(LABELS, SmoothConfig(window=3, hysteresis=0.0))
    decisions = [mean.update(_binary(p)) for p in (0.9, 0.9, 0.0, 0.0)]
    assert [d.label for d in decisions] == ["dog", "dog", "dog", "cat"]
    assert decisions[2].smoothed == pytest.approx(0.6, abs=1e-6)
    assert [d.changed for d in decisions] == [True, False, False, True]
    vote = Smoother(LABELS, SmoothConfig(window=3, mode="majority", hysteresis=0.0))
    # votes dog | dog cat (a tie keeps the label) | dog cat dog | cat dog cat -> cat
    assert _labels(vote, [0.9, 0.1, 0.9, 0.1, 0.1]) == ["dog", "dog", "dog", "cat", "cat"]


def test_uncertain_band() -> None:
    s = Smoother(LABELS, SmoothConfig(threshold=0.8, hysteresis=0.1))
    assert _labels(s, [0.5, 0.85, 0.75, 0.65, 0.9, 0.15]) == \
        ["uncertain", "dog", "dog", "uncertain", "dog", "cat"]
    with pytest.raises(UsageError, match="--smooth 0"):
        SmoothConfig(window=0)
    with pytest.raises(UsageError, match="--smooth-mode 'median'"):
        SmoothConfig(mode="median")


def test_histogram_percentiles_match_numpy() -> None:
    rng = np.random.default_rng(1)
    samples = rng.lognormal(mean=-6, sigma=0.7, size=5000)  # around 2.5 ms
    h = Histogram()
    for x in samples:
        h.add(float(x))
    for q in (50, 95, 99):
        assert h.percentile(q) == pytest.approx(np.percentile(samples, q), rel=0.01)
    assert Histogram().percentile(50) != Histogram().percentile(50)  # NaN when empty


def test_summary_text() -> None:
    st = RunStats()
    for i in range(10):
        st.frame_done({"capture": 0.001, "invoke": 0.002 + i * 1e-4, "total": 0.004}, float(i))
    s = {"frames": 10, "seconds": 1.0, "fps": 10.0, "stages_ms": st.stage_ms(), "dropped": 0, "reconnects": 1,
         "stalls": 0, "peak_rss_mb": 50.0, "stopped": "end"}
    text = format_summary(s)
    assert text.splitlines()[0].startswith("10 frames in 1.0 s (10.0 FPS), 0 dropped, 1 reconnects")
    assert "invoke" in text and "capture wait" in text and "per frame" in text
