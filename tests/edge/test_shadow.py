"""--shadow BUNDLE (issue 14 part 7): a second real bundle on every Nth frame, its agreement with the main
one in events and the summary; a broken shadow is refused up front in one line; a shadow that fails while
running is disabled with an event and the main loop finishes every frame."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import pytest

from edgeclf.edge import integrations
from edgeclf.edge.events import EventWriter
from edgeclf.edge.loop import CameraConfig, run_camera
from edgeclf.edge.model import Classifier
from edgeclf.errors import UsageError

from .conftest import run_cli

pytestmark = pytest.mark.tflite_runtime


def _run(bundle: Path, source: Path, **config) -> tuple[dict, list[dict]]:
    stream = io.StringIO()
    summary = run_camera(bundle, CameraConfig(source=str(source), **config), events=EventWriter(stream=stream))
    return summary, [json.loads(line) for line in stream.getvalue().splitlines()]


def test_the_same_bundle_as_shadow_always_agrees(bundles) -> None:
    b = bundles.path("b32-int8")
    summary, events = _run(b, bundles.images, shadow=b, shadow_every=1)
    s = summary["shadow"]
    assert s["enabled"] and s["compared"] >= 1 and s["agreement"] == 1.0 and s["disagreements"] == []
    assert s["compared"] + s["busy"] == summary["frames"]  # every frame offered: compared, or skipped while busy
    (start,) = [e for e in events if e["event"] == "shadow_start"]
    assert start["every"] == 1 and start["sha256"] == summary["shadow"]["sha256"]
    last = [e for e in events if e["event"] == "shadow"][-1]
    assert last["compared"] == s["compared"] and last["agreement"] == 1.0
    assert events[-1]["event"] == "summary" and events[-1]["shadow"]["compared"] == s["compared"]


def test_a_shadow_with_other_labels_never_agrees_and_says_which(bundles) -> None:
    summary, _ = _run(bundles.path("b32-float32"), bundles.images, shadow=bundles.path("rgb32-float32"),
                      shadow_every=2)
    s = summary["shadow"]
    assert s["compared"] >= 1 and s["agreed"] == 0 and s["agreement"] == 0.0
    assert s["compared"] + s["busy"] == summary["frames"] // 2
    for main, shadow, n in s["disagreements"]:
        assert main in ("horses", "humans") and shadow in ("blue", "green", "red") and n >= 1


def test_a_shadow_with_the_same_preprocessing_gets_the_main_models_input(bundles) -> None:
    """Same preprocessing and input tensor: the loop hands the shadow the main model's input (smaller than the
    frame, no second resize) and the shadow's probabilities are those it computes from the frame itself."""
    from edgeclf.imageio import read_bgr

    main, same, other = (Classifier.load(bundles.path(n), threads=1) for n in ("b32-float32", "rgb32-float32",
                                                                               "b32-int8"))
    assert main.same_input(same) and not main.same_input(other)  # float32 vs int8 input
    for image in sorted(p for p in bundles.images.iterdir() if p.suffix in (".png", ".jpg"))[:4]:
        frame = read_bgr(image)
        main(frame)
        got = same.classify_input(main.pre.out.copy()).copy()
        assert got.tobytes() == same(frame).tobytes()


def test_shadow_every_is_checked() -> None:
    with pytest.raises(UsageError, match="--shadow-every 0"):
        CameraConfig(shadow=Path("x"), shadow_every=0).validate()


def test_a_broken_shadow_bundle_is_refused_before_the_camera_starts(bundles, tmp_path: Path) -> None:
    bad = tmp_path / "shadow"
    shutil.copytree(bundles.path("b32-int8"), bad)
    model = bad / "model.tflite"
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte: its sha256 no longer matches the manifest
    model.write_bytes(bytes(data))
    r = run_cli("camera", str(bundles.path("b32-int8")), "--source", str(bundles.images), "--shadow", str(bad))
    assert r.returncode != 0
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: --shadow: ") and "sha256" in lines[0], r.stderr
    assert '"event": "start"' not in r.stdout and "Traceback" not in r.stderr


def test_a_shadow_failing_at_run_time_is_disabled_and_the_camera_goes_on(bundles, monkeypatch) -> None:
    real_load = integrations.load_shadow

    def load_failing(*args, **kwargs) -> Classifier:
        clf = real_load(*args, **kwargs)
        calls = {"n": 0}
        invoke = clf.invoke

        def flaky() -> None:  # the real interpreter, until it fails the way a native error surfaces
            calls["n"] += 1
            if calls["n"] == 3:
                raise RuntimeError("tensor arena gone")
            invoke()

        clf.invoke = flaky  # type: ignore[method-assign]
        return clf

    monkeypatch.setattr(integrations, "load_shadow", load_failing)
    b = bundles.path("b32-float32")
    summary, events = _run(b, bundles.images, shadow=bundles.path("b32-int8"), shadow_every=1)
    assert summary["stopped"] == "end" and summary["frames"] == len(
        [p for p in bundles.images.iterdir() if p.suffix in (".png", ".jpg")])
    (off,) = [e for e in events if e["event"] == "shadow_disabled"]
    assert "RuntimeError: tensor arena gone" in off["error"] and off["compared"] == 2
    assert summary["shadow"]["enabled"] is False and summary["shadow"]["compared"] == 2
    assert "tensor arena gone" in summary["shadow"]["error"]
