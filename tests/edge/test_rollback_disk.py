"""The known-good bundle on disk (issue #14 part 6, edge/rollback.py): a rolled-back or refused bundle is
not what a restart runs. A real camera process, a real SIGHUP, real folders; a writer killed with SIGKILL
at random moments never leaves the bundle's name without a complete bundle."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from edgeclf.bundle import MODEL_FILE, Bundle, load_bundle, read_manifest
from edgeclf.calibration import Calibration, UnknownRule
from edgeclf.edge import rollback
from edgeclf.samples import sample_bytes

from .conftest import REPO, write_clip
from .test_reload import Camera, _count, _frames, _with_samples

pytestmark = [pytest.mark.tflite_runtime, pytest.mark.timing]


@pytest.fixture(scope="module")
def clip(tmp_path_factory, clip_frames) -> Path:
    return write_clip(tmp_path_factory.mktemp("clip") / "clip.mp4", clip_frames, 600)


def _intact(path: Path) -> Bundle:
    """The bundle at `path`, model and sample frames checked against its manifest."""
    b = load_bundle(path)
    for s in b.manifest.samples.items if b.manifest.samples else ():
        sample_bytes(path, s)
    return b


def _run(bundle: Path, source: Path, events: Path) -> list[dict]:
    """A fresh `edgeclf camera` (what a service restart does), 5 frames."""
    out = subprocess.run([sys.executable, "-m", "edgeclf", "camera", str(bundle), "--source", str(source),
                          "--max-frames", "5", "--events", str(events)],
                         capture_output=True, text=True, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
                         timeout=120)
    assert out.returncode == 0, out.stderr
    return [json.loads(line) for line in events.read_text().splitlines()]


def test_a_rolled_back_bundle_is_not_what_a_restart_runs(bundles, clip: Path, tmp_path: Path) -> None:
    live = tmp_path / "bundles" / "current"
    good = _with_samples(bundles, "b32-float32", live)
    good_m = read_manifest(good)
    worse = _with_samples(bundles, "b32-int8", tmp_path / "worse",  # calls every frame unknown
                          Calibration(temperature=100.0, unknown=UnknownRule(threshold=0.9)))
    cam = Camera(live, clip, tmp_path / "events.jsonl")
    try:
        cam.wait(lambda ev: len(_frames(ev)) >= 5)
        # Replaced in place, not by push-bundle.sh: nothing on disk holds the running bundle any more.
        shutil.rmtree(live)
        shutil.copytree(worse, live)
        assert not rollback.previous_of(live).exists()
        cam.proc.send_signal(signal.SIGHUP)
        ev = cam.wait(_count("bundle_restored"))
        ev, err = cam.stop()
    finally:
        cam.kill()
    kinds = [e["event"] for e in ev]
    assert kinds.index("previous_kept") < kinds.index("reloaded") < kinds.index("reload_rolled_back") \
        < kinds.index("bundle_restored")
    kept = next(e for e in ev if e["event"] == "previous_kept")
    assert kept["how"] == "written from memory" and kept["sha256"] == good_m.sha256
    restored = next(e for e in ev if e["event"] == "bundle_restored")
    assert restored["how"] == "from current.previous (there already)" and restored["why"].startswith("rolled back")
    assert ev[-1]["reload"]["rolled_back"] == 1 and ev[-1]["reload"]["disk_failed"] == 0
    # On disk: the good bundle is back, whole; the refused one is kept aside for a look.
    assert _intact(live).manifest == good_m
    assert read_manifest(rollback.rejected_of(live)) == read_manifest(worse)
    assert not rollback.previous_of(live).exists()
    assert "Traceback" not in err
    # A restart (the service's) runs the good bundle, not the refused one.
    again = _run(live, bundles.images, tmp_path / "again.jsonl")
    assert again[-1]["reload"]["sha256"] == good_m.sha256
    assert not any(e["event"] == "bundle_restored" for e in again)


def test_start_falls_back_to_previous_and_finishes_a_cut_swap(bundles, tmp_path: Path) -> None:
    live = tmp_path / "current"
    good = bundles.path("b32-float32")
    good_m = read_manifest(good)
    # A bundle pushed while the camera was down, damaged: the start falls back to current.previous.
    shutil.copytree(bundles.path("b32-int8"), live)
    data = bytearray((live / MODEL_FILE).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (live / MODEL_FILE).write_bytes(bytes(data))
    shutil.copytree(good, rollback.previous_of(live))
    ev = _run(live, bundles.images, tmp_path / "a.jsonl")
    restored = [e for e in ev if e["event"] == "bundle_restored"]
    assert len(restored) == 1 and restored[0]["how"] == "at start" and "sha256" in restored[0]["why"]
    assert ev[-1]["reload"]["sha256"] == good_m.sha256 and _intact(live).manifest == good_m
    assert (rollback.rejected_of(live) / MODEL_FILE).read_bytes() == bytes(data)
    # A kill between the two renames: no `current`, a complete `current.previous`.
    live.rename(tmp_path / "gone")
    shutil.copytree(good, rollback.previous_of(live))
    ev = _run(live / "manifest.json", bundles.images, tmp_path / "b.jsonl")  # the manifest's path works too
    restored = [e for e in ev if e["event"] == "bundle_restored"]
    assert len(restored) == 1 and "a swap cut short" in restored[0]["why"]
    assert _intact(live).manifest == good_m and not rollback.previous_of(live).exists()
    # Both unusable: the camera refuses in one line, and leaves the folders as they were.
    shutil.rmtree(live)
    shutil.copytree(rollback.rejected_of(live), live)
    shutil.copytree(rollback.rejected_of(live), rollback.previous_of(live))
    out = subprocess.run([sys.executable, "-m", "edgeclf", "camera", str(live), "--source", str(bundles.images)],
                         capture_output=True, text=True, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert out.returncode != 0 and "sha256" in out.stderr and "Traceback" not in out.stderr
    assert rollback.previous_of(live).is_dir() and (live / MODEL_FILE).read_bytes() == bytes(data)


_WRITER = textwrap.dedent("""
    import sys, types
    from pathlib import Path
    from edgeclf.bundle import load_bundle
    from edgeclf.edge import rollback

    live, a, b = (Path(p) for p in sys.argv[1:4])
    clfs = []
    for src in (a, b):  # what put_back uses of a Classifier: its manifest and the model bytes it holds
        bundle = load_bundle(src)
        clf = types.SimpleNamespace(manifest=bundle.manifest, bundle=bundle)
        clfs.append((clf, rollback.sample_files(clf)))
    print("ready", flush=True)
    i = 0
    while True:  # each turn: the other bundle written from memory into .previous, then swapped in
        clf, files = clfs[i % 2]
        rollback.put_back(live, clf, files)
        i += 1
""")


def test_a_kill_at_any_moment_leaves_a_complete_bundle(bundles, tmp_path: Path) -> None:
    a = _with_samples(bundles, "b32-float32", tmp_path / "a")
    b = _with_samples(bundles, "b48-int8", tmp_path / "b")
    manifests = {read_manifest(a).sha256: read_manifest(a), read_manifest(b).sha256: read_manifest(b)}
    live = tmp_path / "bundles" / "current"
    shutil.copytree(a, live)
    rng = random.Random(14)
    repaired = 0
    for _ in range(12):
        proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(live), str(a), str(b)], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
        assert proc.stdout is not None and proc.stdout.readline() == "ready\n", proc.communicate()
        time.sleep(rng.uniform(0.0, 0.3))
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
        assert proc.returncode == -signal.SIGKILL
        loaded, note, _ = rollback.start(live, load_bundle)  # type: ignore[arg-type]  # the files, no interpreter
        repaired += note is not None
        assert loaded.manifest == manifests[loaded.manifest.sha256] and _intact(live).manifest == loaded.manifest
        prev = rollback.previous_of(live)
        if prev.exists():  # a `.previous` is whole too, or not there at all
            assert _intact(prev).manifest in manifests.values()
        assert [p.name for p in live.parent.iterdir() if p.name.startswith(".")] == [".current.lock"]  # no temp left
    print(f"{repaired} of 12 kills needed the start's repair")


def test_push_waits_for_the_lock_the_camera_takes(bundles, tmp_path: Path) -> None:
    """deploy/push-bundle.sh and the camera's put-back take the same lock: a push never renames in between."""
    live = tmp_path / "current"
    shutil.copytree(bundles.path("b32-int8"), live)
    with rollback.swap_lock(live):
        push = subprocess.Popen(["sh", str(REPO / "deploy" / "push-bundle.sh"), str(bundles.path("b32-float32")),
                                 str(live)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        with pytest.raises(subprocess.TimeoutExpired):
            push.wait(timeout=3)  # rsync done, the swap waits
        assert read_manifest(live) == read_manifest(bundles.path("b32-int8"))
        assert not rollback.previous_of(live).exists()
    assert push.wait(timeout=30) == 0, push.communicate()
    assert read_manifest(live) == read_manifest(bundles.path("b32-float32"))
    assert read_manifest(rollback.previous_of(live)) == read_manifest(bundles.path("b32-int8"))
