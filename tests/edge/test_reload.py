"""Safe model updates (issue #14 part 6): a real `edgeclf camera` process on a video, bundles replaced by a
real rename-over (deploy/push-bundle.sh, rsync to a local path), a real SIGHUP or --watch; good, corrupt,
self-test-failing and worse bundles."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Callable

import pytest

from edgeclf.bundle import MANIFEST_FILE, MODEL_FILE, load_bundle
from edgeclf.calibration import Calibration, UnknownRule
from edgeclf.convert.samples import write_with_samples

from .conftest import REPO, write_clip

pytestmark = [pytest.mark.tflite_runtime, pytest.mark.timing]
PUSH = REPO / "deploy" / "push-bundle.sh"


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory, clip_frames) -> Path:
    """120 s at 10 FPS: --realtime keeps the camera running while bundles are swapped under it."""
    return write_clip(tmp_path_factory.mktemp("long") / "long.mp4", clip_frames, 1200)


def _photos(bundles) -> list[tuple[Path, int]]:
    return [(p, 0) for p in sorted(bundles.images.glob("*.png")) if not p.name.startswith("color-")]


def _with_samples(bundles, name: str, dest: Path, calibration: Calibration | None = None) -> Path:
    """The fixture bundle `name` as `edgeclf convert` now writes it: with self-test samples."""
    b = load_bundle(bundles.path(name))
    manifest = b.manifest if calibration is None else replace(b.manifest, calibration=calibration)
    write_with_samples(_photos(bundles), dest, b.model_bytes, manifest)
    return dest


def _push(src: Path, target: Path, *extra: str) -> None:
    out = subprocess.run(["sh", str(PUSH), str(src), str(target), *extra], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert target.is_dir() and not (target.parent / f".{target.name}.incoming").exists()


class Camera:
    def __init__(self, bundle: Path, clip: Path, events: Path, *extra: str):
        self.events = events
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "edgeclf", "camera", str(bundle), "--source", str(clip), "--realtime", "--every",
             "1", "--events", str(events), "--trial-frames", "10", *extra],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
            env={**os.environ, "PYTHONPATH": str(REPO)})

    def lines(self) -> list[dict]:
        text = self.events.read_text() if self.events.exists() else ""
        return [json.loads(line) for line in text.splitlines() if line.endswith("}")]

    def wait(self, what: Callable[[list[dict]], bool], timeout: float = 90) -> list[dict]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ev = self.lines()
            if what(ev):
                return ev
            assert self.proc.poll() is None, self.proc.communicate()
            time.sleep(0.05)
        raise AssertionError(f"timed out; events so far: {[e['event'] for e in self.lines()][-20:]}")

    def stop(self) -> tuple[list[dict], str]:
        self.proc.send_signal(signal.SIGTERM)
        _, err = self.proc.communicate(timeout=60)
        assert self.proc.returncode == 0, err
        return self.lines(), err

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()


def _count(kind: str, n: int = 1) -> Callable[[list[dict]], bool]:
    return lambda ev: sum(e["event"] == kind for e in ev) >= n


def _frames(ev: list[dict]) -> list[dict]:
    return [e for e in ev if e["event"] in ("frame", "change")]


def _check_every_frame_reported(ev: list[dict]) -> None:
    seqs = [e["frame"] for e in _frames(ev)]
    assert seqs == sorted(set(seqs)) and len(seqs) == ev[-1]["frames"]  # every frame classified, once


def test_sighup_reloads_and_a_worse_bundle_is_rolled_back(bundles, long_clip: Path, tmp_path: Path) -> None:
    live = tmp_path / "bundles" / "current"
    shutil.copytree(bundles.path("b32-int8"), live)
    first_sha = load_bundle(live).manifest.sha256
    cam = Camera(live, long_clip, tmp_path / "events.jsonl")
    try:
        cam.wait(lambda ev: len(_frames(ev)) >= 5)
        # 1. A bundle made before sample frames existed: loads, the self-test is skipped with a note.
        good = bundles.path("b32-float32")
        _push(good, live, "--hup-pid", str(cam.proc.pid))
        ev = cam.wait(_count("reload_confirmed"))
        done = next(e for e in ev if e["event"] == "reloaded")
        good_sha = load_bundle(good).manifest.sha256
        assert done["trigger"] == "SIGHUP" and done["sha256"] == good_sha and done["previous"] == first_sha
        assert done["self_test"].startswith("skipped: the bundle carries no sample frames")
        assert load_bundle(live.with_name("current.previous")).manifest.sha256 == first_sha  # the old one kept
        # 2. Same model, but its calibration calls every frame "unknown": rolled back after the trial.
        worse = _with_samples(bundles, "b32-int8", tmp_path / "worse",
                              Calibration(temperature=100.0, unknown=UnknownRule(threshold=0.9)))
        _push(worse, live, "--hup-pid", str(cam.proc.pid))
        ev = cam.wait(_count("reload_rolled_back"))
        i_new = max(i for i, e in enumerate(ev) if e["event"] == "reloaded")
        i_back = next(i for i, e in enumerate(ev) if e["event"] == "reload_rolled_back")
        assert ev[i_new]["self_test"].startswith("passed: 4 sample frame(s)")
        back = ev[i_back]
        assert back["back_to"] == good_sha and "rate 1.00 in its first 10 frames" in back["why"]
        on_trial = [e["label"] for e in _frames(ev[i_new:i_back])]
        assert len(on_trial) == 10 and set(on_trial) == {"unknown"}  # exactly the trial, by the new model only
        before = [e["label"] for e in _frames(ev[:i_new])]
        assert before and "unknown" not in before
        ev = cam.wait(lambda ev: len(_frames(ev[i_back:])) >= 5 and _count("bundle_restored")(ev))
        assert "unknown" not in [e["label"] for e in _frames(ev[i_back:])]  # the good model again
        # ... and on disk: the good one is back at `current`, the refused one at `current.rejected`.
        assert load_bundle(live).manifest == load_bundle(good).manifest
        assert load_bundle(live.with_name("current.rejected")).manifest == load_bundle(worse).manifest
        assert not live.with_name("current.previous").exists()
        ev, err = cam.stop()
    finally:
        cam.kill()
    summary = ev[-1]
    assert summary["event"] == "summary" and summary["stopped"] == "SIGTERM"
    assert summary["reload"] == {"reloaded": 2, "failed": 0, "rolled_back": 1, "disk_failed": 0, "sha256": good_sha}
    kept = [e["how"] for e in ev if e["event"] == "previous_kept"]
    assert kept == ["there already", "there already"]  # push-bundle.sh had renamed it there
    _check_every_frame_reported(ev)
    assert "Traceback" not in err


def test_watch_refuses_corrupt_and_untrue_bundles_then_takes_a_good_one(bundles, long_clip: Path,
                                                                       tmp_path: Path) -> None:
    live = tmp_path / "bundles" / "current"
    shutil.copytree(bundles.path("b32-int8"), live)
    first_sha = load_bundle(live).manifest.sha256
    good = _with_samples(bundles, "b32-float32", tmp_path / "good")
    corrupt = tmp_path / "corrupt"
    shutil.copytree(good, corrupt)
    data = bytearray((corrupt / MODEL_FILE).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (corrupt / MODEL_FILE).write_bytes(bytes(data))
    untrue = tmp_path / "untrue"  # a consistent bundle whose samples say the model answers otherwise
    shutil.copytree(good, untrue)
    m = json.loads((untrue / MANIFEST_FILE).read_text())
    for s in m["samples"]["items"]:
        s["probs"] = [round(1.0 - p, 6) for p in s["probs"]]
    (untrue / MANIFEST_FILE).write_text(json.dumps(m))
    cam = Camera(live, long_clip, tmp_path / "events.jsonl", "--watch", "--watch-interval", "0.2",
                 "--events-only", "horses", "--events-only", "humans")
    try:
        cam.wait(lambda ev: len(_frames(ev)) >= 5)
        _push(corrupt, live)
        ev = cam.wait(_count("reload_failed"))
        failed = [e for e in ev if e["event"] == "reload_failed"]
        assert failed[0]["trigger"] == "watch" and failed[0]["stage"] == "verify and load"
        assert "sha256" in failed[0]["error"] and failed[0]["kept"] == first_sha
        _push(untrue, live)
        ev = cam.wait(_count("reload_failed", 2))
        failed = [e for e in ev if e["event"] == "reload_failed"]
        assert failed[1]["stage"] == "self-test" and "does not behave as converted" in failed[1]["error"]
        _push(bundles.path("rgb32-float32"), live)  # sound, but its labels do not fit --events-only horses
        ev = cam.wait(_count("reload_failed", 3))
        assert "--events-only" in [e for e in ev if e["event"] == "reload_failed"][2]["error"]
        assert not any(e["event"] == "reloaded" for e in ev)
        # Each refused bundle was put aside and the running one put back: a restart would run it.
        ev = cam.wait(_count("bundle_restored", 3))
        assert [e["why"] for e in ev if e["event"] == "bundle_restored"] == [
            "reload failed at verify and load", "reload failed at self-test", "reload failed at verify and load"]
        assert load_bundle(live).manifest.sha256 == first_sha and not live.with_name("current.previous").exists()
        _push(good, live)
        ev = cam.wait(_count("reload_confirmed"))
        done = next(e for e in ev if e["event"] == "reloaded")
        assert done["trigger"] == "watch" and done["sha256"] == load_bundle(good).manifest.sha256
        assert done["self_test"].startswith("passed: 4 sample frame(s)")
        ev, err = cam.stop()
    finally:
        cam.kill()
    assert ev[-1]["reload"]["reloaded"] == 1 and ev[-1]["reload"]["failed"] == 3
    assert ev[-1]["reload"]["rolled_back"] == 0
    assert load_bundle(live.with_name("current.previous")).manifest.sha256 == first_sha
    assert sum(e["event"] == "reload_started" for e in ev) == 4  # the restores were not taken for new bundles
    _check_every_frame_reported(ev)
    assert err.count("the running bundle stays") == 3


def test_push_script_refuses_what_is_not_a_bundle(tmp_path: Path) -> None:
    out = subprocess.run(["sh", str(PUSH), str(tmp_path), str(tmp_path / "t")], capture_output=True, text=True)
    assert out.returncode == 1 and "no manifest.json" in out.stderr and not (tmp_path / "t").exists()
    out = subprocess.run(["sh", str(PUSH), str(tmp_path)], capture_output=True, text=True)
    assert out.returncode == 2 and out.stderr.startswith("usage:")
