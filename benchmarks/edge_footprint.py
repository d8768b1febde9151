"""Edge footprint: time from process start to the first classified frame, and the peak RSS, of a fresh
process on the edge path, against a process that merely imports TensorFlow (the baseline, measured now).

Each case is a new Python process, started and waited for here (`os.wait4`, so its peak RSS is its own):

- `import tensorflow` only (baseline: what any TensorFlow-based classifier pays before its first frame;
  timed to the end of the import, not to the exit, whose clean-up is slow);
- the edge path, minimal: verify the bundle, load it, decode a held-out PNG, preprocess, invoke, answer
  (`python -m edgeclf.bench.footprint`: the first-frame time is taken inside the child);
- the edge CLI: `edgeclf classify BUNDLE IMAGE` to its exit (argument parsing, logging, output included);
- the Keras model of the same size doing `model.predict` on the same image (the graduate's first try).

Goal (issue 6) for the default int8 @150 bundle: peak RSS <= 80 MB and first frame <= 0.5 s here.
One untimed run of each first (file cache warm), then medians of --repeats.

--camera-extras (issue 14): peak RSS of `edgeclf camera` on 30 held-out images, plain, with each of --mqtt (a
local mosquitto), --serve, --shadow (the same bundle), --capture, --watch and per-class --threshold with
--events-ignore (unknown is on by default) alone, with all of them on, with all but --shadow (a second
interpreter), with all of them under python -OO (no docstrings: what PYTHONOPTIMIZE=2 in a service gives), and
with all of them after importing OpenSSL first (what edgeclf.cli.no_openssl saves); and
`edgeclf classify` of one image; against a bare process: numpy + cv2 + ai-edge-litert, the same model, one
invoke. Goal: everything on <= 1.1x the bare process. The rows with --shadow hold two models: they are also
put against a bare process with the model in two interpreters ("/ bare with two").

    .venv/bin/python benchmarks/edge_footprint.py [--run RUN] [--repeats 5] [--camera-extras]
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import _common as c

RSS_GOAL_MB = 80.0
EXTRAS_RSS_GOAL = 1.1
FIRST_GOAL_S = 0.5

IMPORT_TF = "import time, tensorflow; print('{\"first_frame_monotonic\": %r}' % time.monotonic(), flush=True)"
BARE_CHILD = r"""
import sys
import cv2
import numpy as np
from ai_edge_litert.interpreter import Interpreter
*models, image = sys.argv[1:]
its = [Interpreter(model_path=m) for m in models]
for it in its:
    it.allocate_tensors()
    inp = it.get_input_details()[0]
    h, w = int(inp["shape"][1]), int(inp["shape"][2])
    x = cv2.resize(cv2.imread(image, cv2.IMREAD_COLOR), (w, h))[None, :, :, ::-1]
    it.set_tensor(inp["index"], x.astype(inp["dtype"]) if inp["dtype"] != np.float32 else (x / 255.0).astype(np.float32))
    it.invoke()
    print(it.get_tensor(it.get_output_details()[0]["index"]).ravel())
"""
BARE = "bare: numpy + cv2 + ai-edge-litert, one invoke"
BARE2 = "bare, the model in two interpreters (what --shadow of the same bundle loads), one invoke each"
WITH_OPENSSL = ("import runpy, ssl, hashlib, sys; sys.argv[0] = 'edgeclf'; "
                "runpy.run_module('edgeclf', run_name='__main__', alter_sys=True)")
KERAS_CHILD = r"""
import os, sys, time
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
from edgeclf.bundle import TensorSpec
from edgeclf.convert.export import load_keras
from edgeclf.edge.preprocess import Preprocessor
from edgeclf.imageio import read_bgr
from edgeclf.preprocess import PreprocessSpec
from pathlib import Path
model = load_keras(Path(sys.argv[1]))
size = int(sys.argv[3])
x = Preprocessor(PreprocessSpec(size, size), TensorSpec("float32"))(read_bgr(sys.argv[2]))
p = model.predict(x, verbose=0)
print('{"first_frame_monotonic": %r}' % time.monotonic(), flush=True)
"""


def measure(cmd: list[str], repeats: int, env: dict[str, str], optional: bool = False) -> dict[str, float | None] | None:
    from edgeclf.bench.footprint import run_measured

    runs = []
    for i in range(repeats + 1):
        r = run_measured(cmd, env=env)
        if r.exit_code != 0:
            last = (r.output.strip().splitlines() or ["no output"])[-1]
            if optional:
                print(f"skipped `{_show(cmd)}`: {last}")
                return None
            raise SystemExit(f"`{_show(cmd)}` failed (exit {r.exit_code}): {last}")
        if i:  # the first run warms the file cache
            runs.append(r)
    first = [r.first_frame_s for r in runs if r.first_frame_s is not None]
    return {"first_frame_s": c.median(first) if first else None, "exit_s": c.median(r.wall_s for r in runs),
            "peak_rss_mb": c.median(r.peak_rss_mb for r in runs)}


def _show(cmd: list[str]) -> str:
    return " ".join("python" if i == 0 else "<script>" if "\n" in x else Path(x).name if "/" in x else x
                    for i, x in enumerate(cmd))


def main(argv: list[str] | None = None) -> int:
    p = c.parser(__doc__)
    c.add_run_args(p)
    p.add_argument("--bundle", action="append", default=None,
                   help="bundle name(s) in the run (default: every bundle)")
    p.add_argument("--repeats", type=int, default=5, help="processes per case; medians (default 5)")
    p.add_argument("--no-keras", action="store_true", help="skip the Keras model case")
    p.add_argument("--camera-extras", action="store_true",
                   help="only the issue-14 comparison: `edgeclf camera` with everything on vs a bare interpreter")
    a = p.parse_args(argv)

    from edgeclf.bundle import read_manifest

    run = c.ensure_run(a.run, a.data)
    m = c.print_machine(f"edge footprint: {run}")
    image = c.held_out(run, a.data)[0][0]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    py = sys.executable
    if a.camera_extras:
        return camera_extras(run, a.bundle or list(c.bundles_of(run)), c.held_out(run, a.data), a.repeats, env, m,
                             a.json)
    base = measure([py, "-c", IMPORT_TF], a.repeats, env)
    cases: dict[str, dict] = {"import tensorflow": base}
    names = a.bundle or list(c.bundles_of(run))
    for n in names:
        b = run / "bundles" / n
        cases[f"{n}: edge path"] = measure([py, "-m", "edgeclf.bench.footprint", str(b), "--image", image,
                                            "--frames", "1"], a.repeats, env)
        cli = measure([py, "-m", "edgeclf", "-q", "classify", str(b), image], a.repeats, env, optional=True)
        if cli is not None:
            cases[f"{n}: edgeclf classify"] = cli
    if not a.no_keras:
        from edgeclf.rundir import RunDir

        info = RunDir(run).read_info()
        for size in sorted({read_manifest(run / "bundles" / n).preprocess.height for n in names}):
            if size in info.models:
                cases[f"Keras {size}: model.predict"] = measure(
                    [py, "-c", KERAS_CHILD, str(run / info.models[size].file), image, str(size)], a.repeats, env)

    rows = []
    for name, r in cases.items():
        goal = ""
        if name.endswith(": edge path") and "int8" in name:
            goal = " / ".join([c.goal(r["peak_rss_mb"] <= RSS_GOAL_MB),
                               c.goal(r["first_frame_s"] is not None and r["first_frame_s"] <= FIRST_GOAL_S)])
        first = r["first_frame_s"] if r["first_frame_s"] is not None else r["exit_s"]
        rows.append([name, first, r["exit_s"], r["peak_rss_mb"],
                     f"{base['peak_rss_mb'] / r['peak_rss_mb']:.1f}×", f"{base['first_frame_s'] / first:.1f}×", goal])
    c.table(["process", "first frame s", "exit s", "peak RSS MB", "RSS: TF / this", "time: TF import / this",
             f"int8 goals: ≤ {RSS_GOAL_MB:.0f} MB / ≤ {FIRST_GOAL_S} s"], rows,
            title=f"fresh processes, medians of {a.repeats} (first frame = from process start; for `import "
                  "tensorflow`: until the import is done, with no frame at all; `edgeclf classify`: until it exits)")
    m = c.finish(m)
    c.save(a.json, {"machine": m, "run": str(run), "image": image, "cases": cases})
    return 0


def camera_extras(run: Path, names: list[str], images: list, repeats: int, env: dict[str, str], m: dict,
                  json_path: Path | None) -> int:
    """Peak RSS: bare interpreter process vs `edgeclf camera` plain vs with the issue-14 integrations on."""
    import shutil
    import tempfile

    from edgeclf.bundle import read_manifest

    py = sys.executable
    tmp = tempfile.TemporaryDirectory()
    folder = Path(tmp.name) / "images"
    folder.mkdir()
    for i, (path, _) in enumerate(images[:30]):
        shutil.copy(path, folder / f"{i:02d}{Path(path).suffix}")
    broker = c.Broker()
    rows, out = [], {}
    try:
        for n in names:
            b = run / "bundles" / n
            cam = [py, "-m", "edgeclf", "-q", "camera", str(b), "--source", str(folder), "--events", os.devnull]
            labels = read_manifest(b).labels
            extras = {"--mqtt": [broker.url()], "--serve": ["127.0.0.1:0"], "--shadow": [str(b)],
                      "--capture": [str(Path(tmp.name) / "cap")], "--watch": [],
                      "--threshold": [f"{labels[0]}=0.8", "--threshold", f"{labels[-1]}=0.6", "--events-ignore",
                                      "uncertain"]}
            every = [x for opt, value in extras.items() for x in (opt, *value)]
            no_shadow = [x for opt, value in extras.items() if opt != "--shadow" for x in (opt, *value)]
            cases = {
                BARE: [py, "-c", BARE_CHILD, str(b / "model.tflite"), images[0][0]],
                BARE2: [py, "-c", BARE_CHILD, str(b / "model.tflite"), str(b / "model.tflite"), images[0][0]],
                "edgeclf classify (one image)": [py, "-m", "edgeclf", "-q", "classify", str(b), images[0][0]],
                "edgeclf camera": cam,
                **{f"edgeclf camera {opt}": cam + [opt, *value] for opt, value in extras.items()},
                "edgeclf camera --mqtt --serve --shadow --capture (the four measured before)":
                    cam + [x for opt in ("--mqtt", "--serve", "--shadow", "--capture") for x in (opt, *extras[opt])],
                "edgeclf camera, everything on but --shadow": cam + no_shadow,
                "edgeclf camera, everything on": cam + every,
                "edgeclf camera, everything on, under python -OO (PYTHONOPTIMIZE=2)":
                    [py, "-OO", *cam[1:], *every],
                "edgeclf camera, everything on, OpenSSL imported first (edgeclf.cli.no_openssl undone)":
                    [py, "-c", WITH_OPENSSL, *cam[3:], *every],
            }
            res = {k: measure(cmd, repeats, env) for k, cmd in cases.items()}
            bare, bare2 = res[BARE]["peak_rss_mb"], res[BARE2]["peak_rss_mb"]
            for k, r in res.items():
                ratio = r["peak_rss_mb"] / bare
                goal = c.goal(ratio <= EXTRAS_RSS_GOAL) if "everything on" in k else ""
                two = "but --shadow" not in k and ("--shadow" in k or "everything on" in k)
                rows.append([n, k, r["peak_rss_mb"], f"{ratio:.2f}×", f"{r['peak_rss_mb'] / bare2:.2f}×" if two else "",
                             goal])
            out[n] = res
    finally:
        broker.close()
        tmp.cleanup()
    c.table(["bundle", "process", "peak RSS MB", "/ bare", "/ bare with two", f"≤ {EXTRAS_RSS_GOAL}×"], rows,
            title=f"peak RSS of fresh processes (wait4), medians of {repeats}")
    # Linux's ru_maxrss of a child starts at the pages of the process it was forked from: every figure above
    # this process's own peak is the child's own; one at or below it may be this process's.
    from edgeclf.edge.stats import vm_hwm_kb

    mine = (vm_hwm_kb() or 0) / 1024
    lowest = min(r[2] for r in rows) if rows else 0.0
    print(f"this process peaked at {mine:.1f} MB: " + ("below every figure, so each is the child's own" if mine < lowest
          else "NOT below every figure: those at or below it may be this process's pages, not the child's"))
    m = c.finish(m)
    c.save(json_path, {"machine": m, "run": str(run), "camera_extras": out})
    return 0


if __name__ == "__main__":
    sys.exit(main())
