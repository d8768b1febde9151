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

from .datasets import resolve_data
from .errors import EdgeclfError

log = logging.getLogger("edgeclf.demo")


def make_clip(run_dir: Path, out: Path, frames_per_image: int = 3, max_images: int = 60, fps: int = 10) -> Path:
    """A video of held-out images (never trained on), for `edgeclf camera --source`."""
    import cv2

    from .imageio import read_bgr
    from .rundir import RunDir

    rd = RunDir(run_dir)
    info, split = rd.read_info(), rd.read_split()
    base = Path(split.val_dir or info.data_dir)
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"mp4v"), fps, (300, 300))
    if not writer.isOpened():
        raise EdgeclfError(f"{out}: OpenCV cannot write mp4 here; install opencv-python-headless with FFmpeg")
    # alternate classes so that the label changes along the clip
    by_label: dict[int, list[str]] = {}
    for rel, label in split.val:
        by_label.setdefault(label, []).append(rel)
    order = [rel for group in zip(*by_label.values()) for rel in group][:max_images]
    for rel in order:
        frame = cv2.resize(read_bgr(base / rel), (300, 300), interpolation=cv2.INTER_AREA)
        for _ in range(frames_per_image):
            writer.write(frame)
    writer.release()
    return out


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
    clip = make_clip(out, out / "clip.mp4")
    events = out / "events.jsonl"
    _run(["camera", str(out / "bundles" / a.bundle), "--source", str(clip), "--events", str(events)])
    lines = [json.loads(x) for x in events.read_text().splitlines() if x.strip()]
    print(f"\ndemo done: run {out}, {len(lines)} events in {events}, bundles in {out / 'bundles'}")


if __name__ == "__main__":
    main()
