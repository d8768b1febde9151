"""The footprint of the edge path: peak memory and start-up time of a process that only loads a bundle
and classifies frames.

Run as a child (`python -m edgeclf.bench.footprint BUNDLE ...`): it verifies and loads the bundle the
way the edge does, preprocesses a real frame, invokes, and prints one JSON line with the monotonic time of
its first classified frame and its peak resident set (VmHWM). The parent (`measure_footprint`) starts
it, waits for it with `os.wait4` so that the resource usage is this child's alone, and turns the clock
readings into "seconds from process start to first frame" (CLOCK_MONOTONIC is system-wide on Linux).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from edgeclf.child import module_argv
from edgeclf.errors import EdgeclfError


@dataclass(frozen=True)
class Footprint:
    peak_rss_mb: float
    first_frame_s: float | None  # None when the child printed no first-frame time (a plain command)
    wall_s: float
    exit_code: int
    output: str


def run_measured(cmd: Sequence[str], env: dict[str, str] | None = None, timeout: float = 600) -> Footprint:
    """Run `cmd`, return its own peak RSS (ru_maxrss via wait4), wall time and output."""
    t0 = time.monotonic()
    proc = subprocess.Popen(list(cmd), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    killer = threading.Timer(timeout, proc.kill)
    killer.start()
    try:
        assert proc.stdout is not None
        out = proc.stdout.read().decode("utf-8", "replace")  # EOF when the child exits (or is killed)
        proc.stdout.close()
        _, status, usage = os.wait4(proc.pid, 0)
    finally:
        killer.cancel()
    wall = time.monotonic() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped by wait4; keep Popen from waiting again
    rss_mb = usage.ru_maxrss / 1024.0  # kB on Linux
    first = None
    for line in out.splitlines():
        if line.startswith("{") and '"first_frame_monotonic"' in line:
            info = json.loads(line)
            first = info["first_frame_monotonic"] - t0
            if info.get("vm_hwm_kb"):
                rss_mb = info["vm_hwm_kb"] / 1024.0
    return Footprint(rss_mb, first, wall, proc.returncode, out)


def measure_footprint(bundle: Path, runtime: str, threads: int, frames: int = 10, image: Path | None = None,
                      python: str | None = None) -> Footprint:
    """Peak RSS and time to first frame of a fresh process running `bundle` on `runtime`."""
    cmd = module_argv("edgeclf.bench.footprint", str(bundle), "--runtime", runtime, "--threads", str(threads),
                      "--frames", str(frames), python=python)
    if image is not None:
        cmd += ["--image", str(image)]
    r = run_measured(cmd)
    if r.exit_code != 0 or r.first_frame_s is None:
        last = (r.output.strip().splitlines() or ["no output"])[-1]
        raise EdgeclfError(f"{bundle}: the footprint run on {runtime} failed ({last})")
    return r


def _child(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m edgeclf.bench.footprint")
    p.add_argument("bundle")
    p.add_argument("--runtime", default=None)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--frames", type=int, default=10)
    p.add_argument("--image", default=None, help="a real image to classify (default: a mid-grey frame)")
    a = p.parse_args(argv)

    import numpy as np

    from edgeclf.edge.model import Classifier
    from edgeclf.edge.postprocess import answer
    from edgeclf.edge.stats import vm_hwm_kb
    from edgeclf.imageio import read_bgr

    clf = Classifier.load(a.bundle, a.runtime, a.threads)  # verify, load probe (cached), build, check tensors
    frame = read_bgr(a.image) if a.image else np.full((480, 640, 3), 128, np.uint8)
    first = None
    label = ""
    for _ in range(max(1, a.frames)):
        label = answer(clf(frame), clf.labels, 0.0)[0]
        if first is None:
            first = time.monotonic()
    print(json.dumps({"first_frame_monotonic": first, "vm_hwm_kb": vm_hwm_kb(),
                      "label": label, "runtime": clf.runtime.name}), flush=True)


if __name__ == "__main__":
    try:
        _child()
    except EdgeclfError as e:
        print(f"error: {e}", flush=True)
        sys.exit(1)
