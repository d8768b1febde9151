"""A restart during a model trial is remembered (issue #14 part 6, edge/rollback.py `<bundle>.trial.json`):
real `edgeclf camera` processes on a video, a real push and SIGHUP, killed with a real SIGKILL mid-trial and
restarted; the restarted camera goes on with the trial and rolls a worse bundle back, and a bundle running
during two deaths is rolled back at start. Damaged and stale markers are ignored with one line."""

from __future__ import annotations

import json
import signal
import shutil
from pathlib import Path

import pytest

from edgeclf.bundle import read_manifest
from edgeclf.calibration import Calibration, UnknownRule
from edgeclf.edge import rollback

from .conftest import run_cli, write_clip
from .test_reload import Camera, _count, _frames, _push, _with_samples

pytestmark = [pytest.mark.tflite_runtime, pytest.mark.timing]
TRIAL = "200"  # frames: 20 s at the clip's 10 FPS with --realtime, time enough to kill a camera mid-trial


@pytest.fixture(scope="module")
def clip(tmp_path_factory, clip_frames) -> Path:
    """300 frames: a whole trial of 200 and then some, read as fast as the model goes without --realtime."""
    return write_clip(tmp_path_factory.mktemp("trial") / "clip.mp4", clip_frames, 300)


@pytest.fixture
def setup(bundles, tmp_path: Path) -> tuple[Path, Path, Path]:
    """`current` holding a good bundle, and a worse one (its calibration calls every frame unknown) to push."""
    live = _with_samples(bundles, "b32-float32", tmp_path / "bundles" / "current")
    worse = _with_samples(bundles, "b32-int8", tmp_path / "worse",
                          Calibration(temperature=100.0, unknown=UnknownRule(threshold=0.9)))
    return live, worse, tmp_path


def _marker(live: Path) -> dict:
    return json.loads(rollback.trial_of(live).read_text())


def _killed_mid_trial(cam: Camera, resumed: bool) -> None:
    """Wait for the new bundle's trial to run a few frames, then SIGKILL the camera: a crash, an OOM kill."""
    started = "reload_trial_resumed" if resumed else "reloaded"
    cam.wait(lambda ev: _count(started)(ev) and len(_frames(ev[[e["event"] for e in ev].index(started):])) >= 3)
    cam.proc.send_signal(signal.SIGKILL)
    cam.proc.communicate(timeout=60)
    assert cam.proc.returncode == -signal.SIGKILL
    assert not any(e["event"] in ("reload_confirmed", "reload_rolled_back") for e in cam.lines())


def _push_and_kill(live: Path, worse: Path, clip: Path, events: Path) -> None:
    cam = Camera(live, clip, events, "--trial-frames", TRIAL)
    try:
        cam.wait(lambda ev: len(_frames(ev)) >= 5)
        _push(worse, live, "--hup-pid", str(cam.proc.pid))
        _killed_mid_trial(cam, resumed=False)
    finally:
        cam.kill()


def test_a_camera_killed_mid_trial_goes_on_with_it_and_rolls_back_a_worse_bundle(setup, clip: Path) -> None:
    live, worse, tmp = setup
    good_m, worse_m = read_manifest(live), read_manifest(worse)
    _push_and_kill(live, worse, clip, tmp / "a.jsonl")
    m = _marker(live)  # written when the trial began, left by the kill
    assert m["sha256"] == worse_m.sha256 and m["previous_sha256"] == good_m.sha256
    assert m["manifest"] == rollback.manifest_digest(worse_m) and m["starts"] == 1 and m["clean_stops"] == 0
    assert m["trial_frames"] == int(TRIAL) and m["baseline_frames"] >= 5 and m["baseline_rate"] == 0.0
    # The service's restart (no --realtime: the 300 frames as fast as the model goes) goes on with the trial.
    out = run_cli("camera", str(live), "--source", str(clip), "--every", "1", "--events", str(tmp / "b.jsonl"))
    assert out.returncode == 0 and "Traceback" not in out.stderr, out.stderr
    ev = [json.loads(line) for line in (tmp / "b.jsonl").read_text().splitlines()]
    kinds = [e["event"] for e in ev]
    resumed = ev[kinds.index("reload_trial_resumed")]
    assert resumed["sha256"] == worse_m.sha256 and resumed["previous"] == good_m.sha256
    assert resumed["starts"] == 2 and resumed["deaths"] == 1 and resumed["trial_frames"] == int(TRIAL)
    i_back = kinds.index("reload_rolled_back")
    assert ev[i_back]["back_to"] == good_m.sha256 and f"rate 1.00 in its first {TRIAL} frames" in ev[i_back]["why"]
    on_trial = [e["label"] for e in _frames(ev[:i_back])]
    assert len(on_trial) == int(TRIAL) and set(on_trial) == {"unknown"}  # judged on its first frames, as live
    after = [e["label"] for e in _frames(ev[i_back:])]
    assert len(after) == 300 - int(TRIAL) and "unknown" not in after  # the good bundle, kept loaded, took over
    restored = ev[kinds.index("bundle_restored")]
    assert restored["how"] == "from current.previous (there already)" and restored["why"].startswith("rolled back")
    assert ev[-1]["reload"]["rolled_back"] == 1 and ev[-1]["reload"]["sha256"] == good_m.sha256
    # On disk: the good bundle back at `current`, the worse one aside, the trial over.
    assert read_manifest(live) == good_m and read_manifest(rollback.rejected_of(live)) == worse_m
    assert not rollback.previous_of(live).exists() and not rollback.trial_of(live).exists()
    assert sorted(p.name for p in live.parent.iterdir()) == [".current.lock", "current", "current.rejected"]


def test_two_deaths_during_one_trial_roll_it_back_at_start(setup, clip: Path) -> None:
    live, worse, tmp = setup
    good_m, worse_m = read_manifest(live), read_manifest(worse)
    _push_and_kill(live, worse, clip, tmp / "a.jsonl")  # death 1
    # A clean stop (SIGTERM: systemctl restart) during the trial is remembered, and is not a death.
    cam = Camera(live, clip, tmp / "b.jsonl", "--trial-frames", "10")  # the marker's 200 frames rule
    try:
        ev = cam.wait(lambda ev: _count("reload_trial_resumed")(ev) and len(_frames(ev)) >= 3)
        assert [e["deaths"] for e in ev if e["event"] == "reload_trial_resumed"] == [1]
        ev, err = cam.stop()
    finally:
        cam.kill()
    assert not any(e["event"] in ("reload_confirmed", "reload_rolled_back") for e in ev), "trial ended early"
    assert {k: _marker(live)[k] for k in ("starts", "clean_stops")} == {"starts": 2, "clean_stops": 1}
    cam = Camera(live, clip, tmp / "c.jsonl")
    try:
        _killed_mid_trial(cam, resumed=True)  # death 2
    finally:
        cam.kill()
    assert [e["deaths"] for e in cam.lines() if e["event"] == "reload_trial_resumed"] == [1]
    assert {k: _marker(live)[k] for k in ("starts", "clean_stops")} == {"starts": 3, "clean_stops": 1}
    # The next start does not run the bundle that was running during two deaths.
    out = run_cli("camera", str(live), "--source", str(clip), "--max-frames", "5", "--events", str(tmp / "d.jsonl"))
    assert out.returncode == 0 and "Traceback" not in out.stderr, out.stderr
    ev = [json.loads(line) for line in (tmp / "d.jsonl").read_text().splitlines()]
    restored = [e for e in ev if e["event"] == "bundle_restored"]
    assert len(restored) == 1 and restored[0]["how"] == "at start" and restored[0]["sha256"] == good_m.sha256
    assert restored[0]["why"].startswith(f"the process stopped 2 times during the trial of {worse_m.sha256[:12]}")
    assert not any(e["event"] == "reload_trial_resumed" for e in ev)
    assert ev[-1]["reload"]["sha256"] == good_m.sha256 and "unknown" not in [e["label"] for e in _frames(ev)]
    assert read_manifest(live) == good_m and read_manifest(rollback.rejected_of(live)) == worse_m
    assert not rollback.previous_of(live).exists() and not rollback.trial_of(live).exists()


def _trial_lines(stderr: str) -> list[str]:
    return [ln for ln in stderr.splitlines() if "trial" in ln and not ln.startswith("removing ")]


@pytest.mark.parametrize("content", ["{\"sha256\": \"ab", "[1, 2]", "{\"starts\": \"many\"}", ""])
def test_a_damaged_marker_is_one_warning_and_ignored(setup, clip: Path, content: str) -> None:
    live, worse, tmp = setup
    shutil.copytree(worse, rollback.previous_of(live))
    rollback.trial_of(live).write_text(content)
    out = run_cli("camera", str(live), "--source", str(clip), "--max-frames", "5", "--events", str(tmp / "e.jsonl"))
    assert out.returncode == 0 and "Traceback" not in out.stderr, out.stderr
    lines = _trial_lines(out.stderr)
    assert len(lines) == 1 and "current.trial.json: not a trial marker edgeclf can read" in lines[0], out.stderr
    assert "runs without a trial" in lines[0]
    ev = [json.loads(line) for line in (tmp / "e.jsonl").read_text().splitlines()]
    assert not any(e["event"] in ("reload_trial_resumed", "bundle_restored") for e in ev)
    assert ev[-1]["reload"]["sha256"] == read_manifest(live).sha256 and not rollback.trial_of(live).exists()
    assert rollback.previous_of(live).is_dir()  # nothing moved


def test_a_stale_marker_is_removed_with_one_line(setup, clip: Path) -> None:
    """Pushed again while the camera was down: `current` is no longer the bundle the marker tried."""
    live, worse, tmp = setup
    shutil.copytree(live, rollback.previous_of(live))
    marker = rollback.Trial.begin(read_manifest(worse), read_manifest(live), 0.0, 30, 30)
    rollback.write_trial(live, marker)
    assert rollback.read_trial(live) == marker
    left = live.parent / ".current.trial.json.k9x2.tmp.json"  # what a kill during write_trial leaves
    left.write_text("{")
    out = run_cli("camera", str(live), "--source", str(clip), "--max-frames", "5", "--events", str(tmp / "e.jsonl"))
    assert out.returncode == 0 and "Traceback" not in out.stderr, out.stderr
    lines = _trial_lines(out.stderr)
    assert len(lines) == 1 and "current.trial.json: removed: current no longer holds the bundle it tried" in lines[0]
    ev = [json.loads(line) for line in (tmp / "e.jsonl").read_text().splitlines()]
    assert not any(e["event"] in ("reload_trial_resumed", "bundle_restored") for e in ev)
    assert not rollback.trial_of(live).exists() and rollback.previous_of(live).is_dir() and not left.exists()


def test_the_marker_lives_from_the_swap_to_the_confirmation(bundles, setup, clip: Path) -> None:
    live, _, tmp = setup
    better = _with_samples(bundles, "b48-float32", tmp / "better")
    cam = Camera(live, clip, tmp / "a.jsonl", "--trial-frames", "30")
    try:
        cam.wait(lambda ev: len(_frames(ev)) >= 5)
        _push(better, live, "--hup-pid", str(cam.proc.pid))
        cam.wait(_count("reloaded"))
        assert _marker(live)["sha256"] == read_manifest(better).sha256  # 30 frames at 10 FPS: still on trial
        cam.wait(_count("reload_confirmed"))
        cam.wait(lambda ev: not rollback.trial_of(live).exists(), timeout=30)
        ev, err = cam.stop()
    finally:
        cam.kill()
    assert ev[-1]["reload"]["sha256"] == read_manifest(better).sha256 and "Traceback" not in err
    assert [p.name for p in live.parent.iterdir() if "trial" in p.name] == []
