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

--decide (issue 14 parts 1-2): the camera with calibrated scores, the bundle's unknown threshold (and the
feature-distance rule, reading the model's second output, when the bundle has one), a threshold per class
and an events filter (--events-ignore uncertain) against the same model with its calibration record removed
and default options, same rounds (docs/unknown.md). The second output's own cost is in invoke: compare
bundles converted with and without --no-feature-distance for it. Goal: the work it adds
(the postprocess stage's p50 difference) < 5 % of the plain frame's p50; the frames' p50 and mean ratios are
printed too (on a loaded machine they move by more than that work, either way).

--extras (issue 14): each round also runs the camera with the integrations on — --mqtt to a local
mosquitto (state every second), --serve with /metrics scraped twice a second, --shadow (the same bundle,
every 10th frame) and --capture into a temp folder — against the plain camera of the same round.
Goal: the work the hooks add to the loop (the postprocess stage's p50 difference) < 5 % of the plain
frame's p50; the frames' p50 and mean ratios and the loop's own time (no capture wait) are printed too: they
also carry the shadow's CPU, which runs beside the loop, and on a loaded machine they move by more.

    .venv/bin/python benchmarks/edge_frame_cost.py [--run RUN] [--frames 120] [--repeats 5] [--extras]
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable

import _common as c

FRAME_GOAL = 1.15
EXTRAS_GOAL = 1.05
STAGES = ("capture", "preprocess", "invoke", "postprocess", "output", "total")
KERAS_GOAL = 20.0


def camera_round(clf: Any, clip: Path, frames: int, extras: Callable[[], dict[str, Any]] | None = None
                 ) -> dict[str, float]:
    """One pass of the real camera loop over the clip; per-stage p50 in ms (and the per-frame mean)."""
    from edgeclf.edge.events import EventWriter
    from edgeclf.edge.loop import CameraConfig, run_camera

    options = extras() if extras else {}
    scraper = _Scraper(options["serve"]) if "serve" in options else None
    try:
        with open(os.devnull, "w") as sink:
            summary = run_camera(clf.bundle.path, CameraConfig(source=str(clip), max_frames=frames, **options),
                                 events=EventWriter(stream=sink), classifier=clf)
    finally:
        if scraper is not None:
            scraper.close()
    st = summary["stages_ms"]
    work = sum(st[k]["mean"] for k in ("preprocess", "invoke", "postprocess", "output"))  # the loop's own time
    return {**{k: st[k]["p50"] for k in STAGES}, "mean": st["total"]["mean"], "work": work,
            "frames": summary["frames"]}


class _Scraper:
    """GET /metrics every `period` seconds while a round runs (what a Prometheus server does, faster)."""

    def __init__(self, bind: str, period: float = 0.5):
        import threading

        self.url, self.period, self.scrapes = f"http://{bind}/metrics", period, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        import urllib.request

        while not self._stop.wait(self.period):
            try:
                with urllib.request.urlopen(self.url, timeout=5) as r:
                    r.read()
                self.scrapes += 1
            except OSError:
                pass  # not serving yet

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def extras_options(clf: Any, broker: Any, tmp: Path) -> Callable[[], dict[str, Any]]:
    """CameraConfig options with the issue-14 integrations on; a new free port for --serve each round."""
    from edgeclf.edge.keep import CaptureConfig
    from edgeclf.edge.mqtt import MqttConfig

    def make() -> dict[str, Any]:
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        return {"mqtt": MqttConfig.parse(broker.url(), interval=1.0), "serve": f"127.0.0.1:{port}",
                "shadow": clf.bundle.path, "shadow_every": 10, "capture": CaptureConfig(tmp / "capture")}

    return make


def main(argv: list[str] | None = None) -> int:
    p = c.parser(__doc__)
    c.add_run_args(p)
    p.add_argument("--bundle", action="append", default=None, help="bundle name(s) in the run (default: all)")
    p.add_argument("--frames", type=int, default=120, help="frames per round (default 120)")
    p.add_argument("--repeats", type=int, default=5, help="rounds; medians over them (default 5)")
    p.add_argument("--threads", type=int, default=None, help="interpreter threads (default: all cores)")
    p.add_argument("--keras-calls", type=int, default=30, help="model.predict calls per round (default 30)")
    p.add_argument("--no-keras", action="store_true", help="skip the Keras comparison")
    p.add_argument("--capture", action="store_true", help="also the camera with --capture alone: default limits, "
                                                          "and every frame offered (--capture-below 1, no interval)")
    p.add_argument("--decide", action="store_true", help="also the camera with calibration, --unknown, per-class "
                                                         "--threshold and --events-ignore on vs without them")
    p.add_argument("--extras", action="store_true", help="also the camera with --mqtt, --serve + /metrics scrapes, "
                                                         "--shadow and --capture on (needs mosquitto)")
    a = p.parse_args(argv)
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
    ext: dict[str, list[dict[str, float]]] = {n: [] for n in names}
    broker = c.Broker() if a.extras else None
    extras = {n: extras_options(clf, broker, Path(tmp.name)) for n, clf in clfs.items()} if broker else {}
    for clf in clfs.values():
        camera_round(clf, clip, 10)  # warm-up
    for _ in range(a.repeats):
        for n, clf in clfs.items():
            cam[n].append(camera_round(clf, clip, a.frames))
            if extras:
                ext[n].append(camera_round(clf, clip, a.frames, extras[n]))
            clf.preprocess(first)
            invoke[n].append(c.median(c.timed(clf.invoke, a.frames, warmup=2)))
    if broker is not None:
        broker.close()
    tmp.cleanup()

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

    if extras:
        rows = []
        for n in names:
            keys = ("postprocess", "total", "mean", "work")
            plain = {k: c.median(r[k] for r in cam[n]) for k in keys}
            on = {k: c.median(r[k] for r in ext[n]) for k in keys}
            ratio = {k: on[k] / plain[k] for k in keys}
            added = (on["postprocess"] - plain["postprocess"]) / plain["total"]  # the hooks run in postprocess
            ok = added < EXTRAS_GOAL - 1
            results[n]["extras"] = {"plain_ms": plain, "extras_ms": on, "ratio": ratio, "added_work": added,
                                    "goal": ok}
            rows.append([n, f"{plain['postprocess']:.3f} / {on['postprocess']:.3f}", f"{added * 100:+.1f} %",
                         *(f"{plain[k]:.3f} / {on[k]:.3f} = {ratio[k]:.3f}×" for k in ("total", "mean", "work")),
                         c.goal(ok)])
        c.table(["bundle", "postprocess p50: plain / on", "added work / frame p50", "per frame p50: plain / on",
                 "per frame mean: plain / on", "loop work mean (no capture wait): plain / on",
                 f"added < {(EXTRAS_GOAL - 1) * 100:.0f} %"], rows,
                title=f"camera (ms) with --mqtt, --serve + /metrics, --shadow (every 10th), --capture on vs plain, "
                      f"same rounds; medians of {a.repeats}. The hooks run in the loop's postprocess stage; the "
                      "shadow's own work runs in a niced thread and shows as contention in the other columns")

    if a.capture:
        results["capture"] = capture_cost(run, clfs, a.frames, a.repeats)
    if a.decide:
        results["decide"] = decide_cost(run, clfs, a.frames, a.repeats)
    keras = {}
    if not a.no_keras:
        keras = keras_comparison(run, names, frame_ms, first, a.keras_calls, a.repeats)
    m = c.finish(m)
    c.save(a.json, {"machine": m, "run": str(run), "bundles": results, "keras": keras})
    return 0


def capture_cost(run: Path, clfs: dict[str, Any], frames: int, repeats: int) -> dict[str, Any]:
    """The camera per frame with --capture (docs/retraining.md) against the plain camera, same rounds.

    `default`: the shipped limits (keeps frames under 0.6, flips, one random frame per 10 min, 5 s apart);
    `every frame`: --capture-below 1 --capture-interval 0: each frame is offered, so each pays the
    near-duplicate thumbnail and, when new, the copy into the writer's queue (the writer's JPEG encoding and
    fsync run in their own thread, on the other core here)."""
    from edgeclf.demo import make_clip
    from edgeclf.edge.events import EventWriter
    from edgeclf.edge.keep import CaptureConfig
    from edgeclf.edge.loop import CameraConfig, run_camera

    modes = {"plain": None, "default": {}, "every frame": {"below": 1.0, "interval": 0.0, "sample": 0.0}}
    out: dict[str, Any] = {}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        clip = make_clip(run, Path(tmp) / "clip.mp4", max_images=max(1, frames // 3 + 1))
        per: dict[str, dict[str, list[dict[str, Any]]]] = {n: {k: [] for k in modes} for n in clfs}
        for i in range(repeats + 1):  # the first round warms up
            for n, clf in clfs.items():
                for mode, kw in modes.items():
                    cap = None if kw is None else CaptureConfig(Path(tmp) / f"kept-{n}-{mode}-{i}", **kw)
                    with open(os.devnull, "w") as sink:
                        s = run_camera(clf.bundle.path, CameraConfig(source=str(clip), max_frames=frames, capture=cap),
                                       events=EventWriter(stream=sink), classifier=clf)
                    if i:
                        per[n][mode].append({"p50": s["stages_ms"]["total"]["p50"],
                                             "mean": s["stages_ms"]["total"]["mean"], **s.get("capture", {})})
        for n in clfs:
            med = {mode: {k: c.median(r[k] for r in per[n][mode]) for k in ("p50", "mean")} for mode in modes}
            res: dict[str, Any] = {"ms": med}
            row: list[Any] = [n, med["plain"]["p50"], med["plain"]["mean"]]
            for mode in ("default", "every frame"):
                r50, rmean = (med[mode][k] / med["plain"][k] for k in ("p50", "mean"))
                kept = c.median(r["kept"] for r in per[n][mode])
                dropped = c.median(r["dropped"] for r in per[n][mode])
                res[mode] = {"ratio_p50": r50, "ratio_mean": rmean, "kept": kept, "dropped": dropped}
                row += [f"{r50:.3f}×", f"{rmean:.3f}×", f"{kept:.0f} / {dropped:.0f}"]
            out[n] = res
            rows.append(row)
    c.table(["bundle", "plain p50", "plain mean", "default: p50", "mean", "kept / dropped", "every frame: p50",
             "mean", "kept / dropped"], rows,
            title=f"camera per frame (ms) with --capture vs plain, same rounds, {frames} frames; medians of {repeats}")
    return out


def decide_cost(run: Path, clfs: dict[str, Any], frames: int, repeats: int) -> dict[str, Any]:
    """The camera with calibrated scores, unknown, per-class thresholds and an events filter (docs/unknown.md)
    against the same interpreter's model without its calibration record and with default options."""
    from dataclasses import replace

    from edgeclf.demo import make_clip
    from edgeclf.edge.decide import EventsFilter
    from edgeclf.edge.events import EventWriter
    from edgeclf.edge.loop import CameraConfig, run_camera
    from edgeclf.edge.model import Classifier
    from edgeclf.edge.postprocess import SmoothConfig

    pairs = {}
    for n, clf in clfs.items():
        if clf.calibration is None:
            print(f"--decide: {n} has no calibration record (converted before it existed); skipped", flush=True)
            continue
        if clf.calibration.feature_unknown is None:
            plain = Classifier(replace(clf.bundle, manifest=replace(clf.manifest, calibration=None)), clf.runtime,
                               clf.threads)
        else:  # the same two-output model (the edge refuses it without the record naming its outputs), with
            plain = Classifier(clf.bundle, clf.runtime, clf.threads)  # the per-frame work of the record turned off
            plain.calibration, plain.raw_probs, plain._distance = None, plain.probs, None
        opts = {"smooth": SmoothConfig(threshold=0.5, class_thresholds=tuple((lab, 0.6) for lab in clf.labels)),
                "events_filter": EventsFilter(ignore=("uncertain",))}
        pairs[n] = {"plain": (plain, {}), "decide": (clf, opts)}
    out: dict[str, Any] = {}
    rows = []
    keys = ("total p50", "total mean", "postprocess p50")
    with tempfile.TemporaryDirectory() as tmp:
        clip = make_clip(run, Path(tmp) / "clip.mp4", max_images=max(1, frames // 3 + 1))
        per = {n: {mode: [] for mode in modes} for n, modes in pairs.items()}
        for i in range(repeats + 1):  # the first round warms up
            for n, modes in pairs.items():
                for mode, (clf, opts) in modes.items():
                    with open(os.devnull, "w") as sink:
                        s = run_camera(clf.bundle.path, CameraConfig(source=str(clip), max_frames=frames, **opts),
                                       events=EventWriter(stream=sink), classifier=clf)
                    st = s["stages_ms"]
                    if i:
                        per[n][mode].append(dict(zip(keys, (st["total"]["p50"], st["total"]["mean"],
                                                            st["postprocess"]["p50"]))))
        for n in pairs:
            med = {mode: {k: c.median(r[k] for r in per[n][mode]) for k in keys} for mode in per[n]}
            ratio = {k: med["decide"][k] / med["plain"][k] for k in keys}
            added = (med["decide"]["postprocess p50"] - med["plain"]["postprocess p50"]) / med["plain"]["total p50"]
            out[n] = {"ms": med, "ratio": ratio, "added": added, "goal": added < 0.05}
            rows.append([n, *(med["plain"][k] for k in keys), *(med["decide"][k] for k in keys),
                         *(f"{ratio[k]:.3f}×" for k in keys[:2]), f"{100 * added:.1f} %", c.goal(added < 0.05)])
    if rows:
        c.table(["bundle", "plain p50", "mean", "postprocess", "decide p50", "mean", "postprocess", "ratio p50",
                 "mean", "added work / frame", "< 5 %"], rows,
                title=f"camera per frame (ms) with calibration + unknown + per-class thresholds + events filter vs "
                      f"without, same rounds, {frames} frames; medians of {repeats}")
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
