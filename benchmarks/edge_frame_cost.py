"""Edge frame cost: what `edgeclf camera` spends per frame, against the bare interpreter and against Keras.

For each bundle of a run, on a video clip of held-out images (mp4, decoded by OpenCV): the camera loop
itself (`edgeclf.edge.loop.run_camera`, the code behind `edgeclf camera BUNDLE --source clip.mp4`, with its
per-stage timers) against the bare `invoke()` of the same interpreter, in the same process, same rounds.
The camera's per-frame cost is split into its stages (capture: reading and decoding the video frame;
preprocess; invoke inside the loop; postprocess with smoothing; output: events). Then the Keras
model of the same size doing what a course graduate writes first, `model.predict(frame[None])`, against
the camera's per-frame cost on each int8 bundle.

Goals (issue 6): camera per frame <= 1.15x bare invoke; int8 @150 >= 20x faster than Keras predict.
Rounds are interleaved across variants (--repeats); medians over rounds of the per-round medians.

--features (issue 14): the camera with each option on against the plain camera (the same interpreter, its
calibration record off, default options), in paired A/B rounds (benchmarks/_features.py): calibrated
scores + unknown + per-class thresholds + an events filter (decide), --capture (default limits, and every
frame offered), --mqtt to a local mosquitto, --serve with /metrics scraped twice a second, --shadow (the
same bundle, every 10th frame), --watch, and all of them at once. Each round runs plain and feature back to
back (order alternating), so the figure is the spread of per-round ratios: median, bootstrap 95 % interval
of the median, min-max. Goal: the per-frame p50 with the feature on < 1.05x the plain one. --extras,
--capture and --decide run the subsets they name (extras: mqtt, serve, shadow, capture, everything);
--attribution runs everything and everything-but-X for each part X: what X costs with all the others on
(where the threads of the parts compete, a part alone can look cheaper than it is beside the rest).
--pace FPS reads the clip at FPS frames a second (`--realtime`), as a camera delivers frames: the loop then
waits between frames, so the verdict is on the loop's own work per frame (how late each answer comes), not
on the frame interval. Without it the loop runs flat out: every option's work comes out of the frame rate.

    .venv/bin/python benchmarks/edge_frame_cost.py [--run RUN] [--frames 120] [--repeats 5] [--features]
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable

import _common as c
import _features as f

FRAME_GOAL = 1.15
STAGES = ("capture", "preprocess", "invoke", "postprocess", "output", "total")
KERAS_GOAL = 20.0


def camera_round(clf: Any, clip: Path, frames: int) -> dict[str, float]:
    """One pass of the real camera loop over the clip; per-stage p50 in ms (and the per-frame mean)."""
    from edgeclf.edge.events import EventWriter
    from edgeclf.edge.loop import CameraConfig, run_camera

    with open(os.devnull, "w") as sink:
        summary = run_camera(clf.bundle.path, CameraConfig(source=str(clip), max_frames=frames),
                             events=EventWriter(stream=sink), classifier=clf)
    st = summary["stages_ms"]
    return {**{k: st[k]["p50"] for k in STAGES}, "mean": st["total"]["mean"], "frames": summary["frames"]}


def main(argv: list[str] | None = None) -> int:
    p = c.parser(__doc__)
    c.add_run_args(p)
    p.add_argument("--bundle", action="append", default=None, help="bundle name(s) in the run (default: all)")
    p.add_argument("--frames", type=int, default=120, help="frames per round (default 120)")
    p.add_argument("--repeats", type=int, default=5, help="rounds; medians over them (default 5)")
    p.add_argument("--threads", type=int, default=None, help="interpreter threads (default: all cores)")
    p.add_argument("--keras-calls", type=int, default=30, help="model.predict calls per round (default 30)")
    p.add_argument("--no-keras", action="store_true", help="skip the Keras comparison")
    p.add_argument("--features", default=None, metavar="NAMES",
                   help="paired A/B rounds of the camera with options on vs plain: a comma list of "
                        f"{', '.join(f.FEATURES)}, or all (needs mosquitto for mqtt)")
    p.add_argument("--capture", action="store_true", help="--features capture,capture-every")
    p.add_argument("--decide", action="store_true", help="--features decide")
    p.add_argument("--extras", action="store_true", help="--features mqtt,serve,shadow,capture,everything")
    p.add_argument("--pace", type=int, default=0, metavar="FPS", help="--features on a clip read at FPS frames a "
                   "second (--realtime), as a camera delivers them: the verdict is then on the loop's work per frame")
    p.add_argument("--attribution", action="store_true", help="--features everything and everything-but-X for each "
                   "part X: what each part costs with the others on")
    a = p.parse_args(argv)
    features = feature_names(a)
    c.quiet_tensorflow()

    import cv2

    from edgeclf.demo import make_clip
    from edgeclf.edge.model import Classifier

    run = c.ensure_run(a.run, a.data)
    m = c.print_machine(f"edge frame cost: {run}")
    names = a.bundle or list(c.bundles_of(run))
    clfs = {n: Classifier.load(run / "bundles" / n, threads=a.threads) for n in names}
    tmp = tempfile.TemporaryDirectory()
    clip = make_clip(run, Path(tmp.name) / "clip.mp4", max_images=max(1, a.frames // 3 + 1))
    cap = cv2.VideoCapture(str(clip))
    ok, first = cap.read()
    cap.release()
    if not ok:
        raise SystemExit(f"{clip}: OpenCV decoded no frame (no mp4 support in this OpenCV build?)")
    print(f"clip: {first.shape[1]}x{first.shape[0]} mp4 of held-out images, {a.frames} frames per round; "
          f"{next(iter(clfs.values())).threads} interpreter threads", flush=True)

    invoke: dict[str, list[float]] = {n: [] for n in names}
    cam: dict[str, list[dict[str, float]]] = {n: [] for n in names}
    for clf in clfs.values():
        camera_round(clf, clip, 10)  # warm-up
    for _ in range(a.repeats):
        for n, clf in clfs.items():
            cam[n].append(camera_round(clf, clip, a.frames))
            clf.preprocess(first)
            invoke[n].append(c.median(c.timed(clf.invoke, a.frames, warmup=2)))
    rows, results = [], {}
    frame_ms: dict[str, float] = {}
    for n in names:
        inv = c.median(invoke[n])
        st = {k: c.median(r[k] for r in cam[n]) for k in STAGES}
        ratio = st["total"] / inv
        frame_ms[n] = st["total"]
        results[n] = {"invoke_ms": inv, "camera_ms": st, "ratio": ratio, "goal": ratio <= FRAME_GOAL}
        rows.append([n, inv, *(st[k] for k in STAGES), f"{ratio:.2f}×", c.goal(ratio <= FRAME_GOAL)])
    c.table(["bundle", "bare invoke", "capture", "preprocess", "invoke in loop", "postprocess", "output",
             "camera per frame", "camera / bare invoke", f"≤ {FRAME_GOAL}×"], rows,
            title=f"`edgeclf camera` on an mp4 vs bare invoke (ms, p50s; medians of {a.repeats} rounds)")

    if features and a.pace:
        clip = make_clip(run, Path(tmp.name) / "paced.avi", max_images=max(1, a.frames // 3 + 1), fps=a.pace)
    paired = feature_cost(clfs, clip, a.frames, a.repeats, features, float(a.pace)) if features else {}
    tmp.cleanup()
    keras = {}
    if not a.no_keras:
        keras = keras_comparison(run, names, frame_ms, first, a.keras_calls, a.repeats)
    m = c.finish(m)
    c.save(a.json, {"machine": m, "run": str(run), "bundles": results, "features": paired, "keras": keras})
    return 0


def feature_names(a: Any) -> list[str]:
    """The features asked for, in FEATURES order; an unknown name is one line and exit 2."""
    names = set(f.FEATURES if a.features == "all" else (a.features or "").split(",")) - {""}
    for flag in ("capture", "decide", "extras", "attribution"):
        if getattr(a, flag):
            names |= set(f.GROUPS[flag])
    unknown = names - set(f.FEATURES)
    if unknown:
        raise SystemExit(f"--features {a.features}: unknown {', '.join(sorted(unknown))}; expected a comma list of "
                         f"{', '.join(f.FEATURES)}, or all")
    return [n for n in f.FEATURES if n in names]


def feature_cost(clfs: dict[str, Any], clip: Path, frames: int, rounds: int, names: list[str],
                 pace: float = 0.0) -> dict[str, Any]:
    """Per bundle, each feature against the plain camera in paired rounds (benchmarks/_features.py); `pace`:
    the clip read at its own rate of `pace` frames a second."""
    broker = c.Broker() if f.uses_mqtt(names) else None
    out: dict[str, Any] = {}
    try:
        for n, clf in clfs.items():
            out[n] = f.paired_rounds(clf, clip, frames, rounds, names, broker, paced=pace > 0)
            how = f" read at {pace:g} frames/s (--realtime)" if pace else ""
            c.table(f.HEADERS, f.rows(out[n]),
                    title=f"{n}: the camera with each option on vs plain, {rounds} paired rounds of {frames} frames{how} "
                          "(order alternating); ratios on / plain: median [bootstrap 95 % interval of the median] "
                          "(min–max). Features: " + "; ".join(f"{k}: {f.DESCRIBE[k]}" for k in names))
    finally:
        if broker is not None:
            broker.close()
    return out


def keras_comparison(run: Path, names: list[str], frame_ms: dict[str, float], frame: Any, calls: int,
                     repeats: int) -> dict:
    """model.predict on one frame (Keras, same size) vs the camera's per-frame cost on each int8 bundle."""
    from edgeclf.bundle import TensorSpec, read_manifest
    from edgeclf.convert.export import load_keras
    from edgeclf.edge.preprocess import Preprocessor
    from edgeclf.rundir import RunDir

    info = RunDir(run).read_info()
    rows, out = [], {}
    for n in names:
        man = read_manifest(run / "bundles" / n)
        size = man.preprocess.height
        if man.input.dtype not in ("int8", "uint8") or size not in info.models:
            continue
        model = load_keras(run / info.models[size].file)
        x = Preprocessor(info.models[size].preprocess, TensorSpec("float32"))(frame).copy()
        times = [c.median(c.timed(lambda: model.predict(x, verbose=0), calls, warmup=3)) for _ in range(repeats)]
        kp, fr = c.median(times), frame_ms[n]
        speedup = kp / fr
        out[n] = {"keras_predict_ms": kp, "frame_ms": fr, "speedup": speedup, "goal": speedup >= KERAS_GOAL}
        rows.append([n, f"models/{size}.keras", kp, fr, f"{speedup:.1f}×", c.goal(speedup >= KERAS_GOAL)])
    if rows:
        c.table(["bundle", "Keras model", "model.predict ms (1 frame)", "camera ms/frame", "speed-up",
                 f"≥ {KERAS_GOAL:.0f}×"], rows, title="Keras model.predict on one frame vs `edgeclf camera` on int8")
    return out


if __name__ == "__main__":
    sys.exit(main())
