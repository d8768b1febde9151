"""The main job end to end on horse-or-human: train -> convert -> bench -> camera on a clip.

`scripts/demo.sh` runs `python -m edgeclf.demo`. Each step is the real CLI in a subprocess, exactly as a
person would type it, so the demo also proves the commands compose.
"""

from __future__ import annotations

import argparse
import json
import logging
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from .datasets import resolve_data
from .errors import EdgeclfError

log = logging.getLogger("edgeclf.demo")


def make_clip(run_dir: Path, out: Path, frames_per_image: int = 3, max_images: int = 80, fps: int = 10,
              seed: int = 0) -> Path:
    """Camera-like frames (`edgeclf.camsim`) of the run's test images (never trained on, never used to pick an
    epoch), classes alternating, as an MJPEG .avi with `<clip>.labels.json`, for `edgeclf camera --source`."""
    from .camsim import CameraSim, frames, write_video
    from .rundir import RunDir

    rd = RunDir(run_dir)
    info, split = rd.read_info(), rd.read_split()
    paths = split.paths(info.data_dir)
    side = paths.test or paths.val
    by_label: dict[int, list[tuple[str, int]]] = {}
    for item in side:
        by_label.setdefault(item[1], []).append(item)
    per_class = max(1, max_images // max(len(by_label), 1))
    # evenly spaced through each class's (sorted) test images, so every test subject is in the clip
    spread = [[side[int(k * len(side) / per_class)] for k in range(min(per_class, len(side)))]
              for side in by_label.values()]
    order = [item for group in zip(*spread) for item in group]
    return write_video(frames(order, CameraSim(seed=seed), frames_per_image), out, info.labels, fps)


def footage_accuracy(events: Path, clip: Path) -> tuple[Any, float]:
    """Per-frame accuracy of `camera`'s label (smoothed, what a user sees) with its interval over the subjects
    the frames show, and the raw top-1's accuracy, on the clip."""
    from .camsim import read_video_frames
    from .groups import groups_for
    from .metrics import bootstrap_interval

    truth = read_video_frames(clip)  # (label, source image) per frame
    rows = [json.loads(x) for x in events.read_text().splitlines() if x.strip()]
    seen = {int(r["frame"]) - 1: r for r in rows if r.get("event") in ("change", "frame")}  # camera counts from 1
    shown = [(i, label, src) for i, (label, src) in enumerate(truth) if i in seen]
    groups, _ = groups_for([(src, 0) for _, _, src in shown])
    ok = [seen[i]["label"] == label for i, label, _ in shown]
    raw = sum(seen[i]["top"][0][0] == label for i, label, _ in shown) / max(len(shown), 1)
    labels = sorted({label for _, label, _ in shown})
    return bootstrap_interval(ok, groups, [labels.index(label) for _, label, _ in shown]), raw


def _run(args: list[str]) -> None:
    cmd = [sys.executable, "-m", "edgeclf", *args]
    print(f"\n$ edgeclf {shlex.join(args)}", flush=True)
    t0 = time.monotonic()
    r = subprocess.run(cmd)
    if r.returncode != 0:
        raise SystemExit(f"demo: `edgeclf {shlex.join(args)}` failed with exit code {r.returncode}")
    print(f"  ({time.monotonic() - t0:.0f} s)", flush=True)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="scripts/demo.sh", description=__doc__)
    p.add_argument("--data", help="folder with horses/ and humans/ (default: $EDGECLF_DATA, cache, download)")
    p.add_argument("--out", default="runs/demo", help="run directory to write (default runs/demo)")
    p.add_argument("--epochs", type=int, default=None, help="epochs per size (default: edgeclf train's)")
    p.add_argument("--bundle", default="150-int8", help="bundle the camera step runs (default 150-int8)")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        data = resolve_data(a.data)
    except EdgeclfError as e:
        raise SystemExit(f"error: {e}") from None
    out = Path(a.out)
    train = ["train", str(data), "--out", str(out)] + (["--epochs", str(a.epochs)] if a.epochs else [])
    _run(train)
    _run(["convert", str(out), "--quantize"])
    _run(["bench", str(out)])
    clip = make_clip(out, out / "clip.avi")
    events = out / "events.jsonl"
    events.unlink(missing_ok=True)
    _run(["camera", str(out / "bundles" / a.bundle), "--source", str(clip), "--events", str(events), "--every", "1"])
    label, raw = footage_accuracy(events, clip)
    print(f"\ncamera on camera-like frames of test subjects ({clip}): label right on {label.text()} "
          f"(raw top-1 {raw:.3f})")
    print(f"demo done: run {out}, events in {events}, bundles in {out / 'bundles'}")


if __name__ == "__main__":
    main()
