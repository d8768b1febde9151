"""Paired A/B rounds for `edge_frame_cost.py --features`: what each camera option costs the frame loop.

Each feature is the camera with one option (or all of them) on (B) against the plain camera (A): the same
interpreter, the same clip, the bundle's calibration record off and default options. A round runs A and B
back to back, A first in even rounds and B first in odd ones, so that a machine whose load drifts (other
work on the same cores) moves both sides of a pair alike; the figure of a feature is the distribution of
its per-round ratios B / A, never a ratio of medians taken minutes apart. Printed per feature: the median
of the paired ratios, their min-max, and a bootstrap 95 % interval of that median (resampling rounds).
"""

from __future__ import annotations

import os
import random
import socket
import statistics
import tempfile
import threading
import urllib.request
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Sequence

GOAL = 1.05  # issue 14: each part costs the frame loop < 5 %
METRICS = ("p50", "mean", "work")  # per-frame p50, per-frame mean, the loop's own time per frame (mean)
PARTS = ("decide", "capture", "mqtt", "serve", "shadow", "watch")  # what "everything" turns on
BUT = tuple(f"everything-but-{p}" for p in PARTS)  # everything with one part off: what that part costs among the rest
FEATURES = ("decide", "capture", "capture-every", "mqtt", "serve", "stream", "shadow", "watch", "everything", *BUT)
GROUPS = {"extras": ("mqtt", "serve", "shadow", "capture", "everything"), "capture": ("capture", "capture-every"),
          "decide": ("decide",), "attribution": ("everything", *BUT), "all": FEATURES}
DESCRIBE = {
    "decide": "calibrated scores + --unknown auto (+ feature distance) + --threshold per class + --events-ignore",
    "capture": "--capture DIR, default limits",
    "capture-every": "--capture, every frame offered (--capture-below 1 --capture-interval 0 --capture-sample 0)",
    "mqtt": "--mqtt to a local mosquitto, state every 1 s",
    "serve": "--serve, /metrics scraped twice a second",
    "stream": "--serve with one client watching the /stream preview (MJPEG, at most 15 JPEGs a second)",
    "shadow": "--shadow (the same bundle) every 10th frame",
    "watch": "--watch (bundle folder checked every 1 s)",
    "everything": "all of the above at once (capture with default limits)",
    **{f"everything-but-{p}": f"everything but {p}" for p in PARTS},
}


def plain_classifier(clf: Any) -> Any:
    """The same interpreter and model with its calibration record's per-frame work off (no unknown)."""
    from edgeclf.edge.model import Classifier

    if clf.calibration is None:
        return clf
    if clf.calibration.feature_unknown is None:
        return Classifier(replace(clf.bundle, manifest=replace(clf.manifest, calibration=None)), clf.runtime,
                          clf.threads)
    plain = Classifier(clf.bundle, clf.runtime, clf.threads)  # the edge refuses a two-output model without the
    plain.calibration, plain.raw_probs, plain._distance = None, plain.probs, None  # record: turned off instead
    return plain


class Scraper:
    """GET /metrics every `period` seconds while a round runs (what a Prometheus server does, faster)."""

    PATH = "/metrics"

    def __init__(self, bind: str, period: float = 0.5):
        self.url, self.period, self.scrapes = f"http://{bind}{self.PATH}", period, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
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


class Streamer(Scraper):
    """A client watching /stream while a round runs: reads the MJPEG preview as fast as the camera sends it."""

    PATH = "/stream"

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                with urllib.request.urlopen(self.url, timeout=5) as r:
                    while not self._stop.is_set() and r.read(65536):
                        self.scrapes += 1
            except OSError:
                self._stop.wait(0.05)  # not serving yet, or the round ended


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def parts_of(name: str) -> tuple[str, ...]:
    """The options feature `name` turns on: itself, everything's PARTS, or those but one."""
    if name == "everything":
        return PARTS
    if name.startswith("everything-but-"):
        return tuple(p for p in PARTS if p != name[len("everything-but-"):])
    return (name,)


def feature_options(name: str, clf: Any, broker: Any, tmp: Path, round_no: int) -> tuple[Any, dict[str, Any]]:
    """(classifier, CameraConfig options) of feature `name` in round `round_no`."""
    from edgeclf.edge.decide import EventsFilter
    from edgeclf.edge.keep import CaptureConfig
    from edgeclf.edge.postprocess import SmoothConfig
    from edgeclf.edge.reload import ReloadConfig

    parts = parts_of(name)
    opts: dict[str, Any] = {}
    for part in parts:
        if part == "decide":
            opts["smooth"] = SmoothConfig(threshold=0.5, class_thresholds=tuple((lab, 0.6) for lab in clf.labels))
            opts["events_filter"] = EventsFilter(ignore=("uncertain",))
        elif part in ("capture", "capture-every"):
            every = {"below": 1.0, "interval": 0.0, "sample": 0.0} if part == "capture-every" else {}
            opts["capture"] = CaptureConfig(tmp / f"kept-{name}-{round_no}", **every)
        elif part == "mqtt":
            from edgeclf.edge.mqtt import MqttConfig

            opts["mqtt"] = MqttConfig.parse(broker.url(), interval=1.0)
        elif part in ("serve", "stream"):
            opts["serve"] = f"127.0.0.1:{_free_port()}"
        elif part == "shadow":
            opts.update(shadow=clf.bundle.path, shadow_every=10)
        elif part == "watch":
            opts["reload"] = ReloadConfig(watch=True, interval=1.0)
    return clf if ("decide" in parts) else None, opts


def camera_run(clf: Any, clip: Path, frames: int, opts: dict[str, Any], stream: bool = False) -> dict[str, float]:
    """One pass of the real camera loop over the clip: per-frame p50 and mean, the loop's own time, postprocess.
    With --serve, a client scrapes /metrics beside it, or with `stream` watches /stream."""
    from edgeclf.edge.events import EventWriter
    from edgeclf.edge.loop import CameraConfig, run_camera

    scraper = (Streamer if stream else Scraper)(opts["serve"]) if "serve" in opts else None
    try:
        with open(os.devnull, "w") as sink:
            s = run_camera(clf.bundle.path, CameraConfig(source=str(clip), max_frames=frames, **opts),
                           events=EventWriter(stream=sink), classifier=clf)
    finally:
        if scraper is not None:
            scraper.close()
    st = s["stages_ms"]
    work = sum(st[k]["mean"] for k in ("preprocess", "invoke", "postprocess", "output"))
    return {"p50": st["total"]["p50"], "mean": st["total"]["mean"], "work": work,
            "postprocess": st["postprocess"]["p50"], "frames": s["frames"]}


def spread(ratios: Sequence[float], resamples: int = 2000, seed: int = 0) -> dict[str, float]:
    """Median of paired ratios, their min and max, and a bootstrap 95 % interval of the median."""
    rng = random.Random(seed)
    n = len(ratios)
    meds = sorted(statistics.median(rng.choices(ratios, k=n)) for _ in range(resamples))
    return {"median": statistics.median(ratios), "min": min(ratios), "max": max(ratios),
            "lo": meds[int(0.025 * resamples)], "hi": meds[int(0.975 * resamples) - 1], "n": n}


MIN_ROUNDS = 5  # fewer paired rounds make no interval worth a verdict


def verdict(s: dict[str, float]) -> str:
    """holds: the whole interval is under the goal; MISSED: the whole interval is over it; else unresolved."""
    if s["n"] < MIN_ROUNDS:
        return f"? ({s['n']} rounds < {MIN_ROUNDS})"
    return "holds" if s["hi"] < GOAL else "MISSED" if s["lo"] > GOAL else "unresolved: interval spans it"


def uses_mqtt(names: Sequence[str]) -> bool:
    """Whether any of the features turns --mqtt on (a broker must run)."""
    return any("mqtt" in parts_of(n) for n in names)


def paired_rounds(clf: Any, clip: Path, frames: int, rounds: int, names: Sequence[str],
                  broker: Any, paced: bool = False) -> dict[str, dict[str, Any]]:
    """Run `rounds` ABAB rounds of every feature against the plain camera; paired ratios and their spread.

    `paced`: the clip is read at its own frame rate (`--realtime`, as a camera delivers frames), so the loop
    waits between frames; the per-frame p50 is then the frame interval, and the verdict is on the loop's own
    work per frame (preprocess to output: how late each answer comes)."""
    plain = plain_classifier(clf)
    pace = {"realtime": True} if paced else {}
    pairs: dict[str, list[tuple[dict[str, float], dict[str, float]]]] = {n: [] for n in names}
    with tempfile.TemporaryDirectory() as tmp:
        camera_run(plain, clip, min(frames, 30), {})  # warm-up
        for i in range(rounds):
            for n in names:
                feature_clf, opts = feature_options(n, clf, broker, Path(tmp), i)
                runs: dict[str, Callable[[], dict[str, float]]] = {
                    "a": lambda: camera_run(plain, clip, frames, pace),
                    "b": lambda: camera_run(feature_clf or plain, clip, frames, {**opts, **pace},
                                            stream="stream" in parts_of(n))}
                order = ("a", "b") if i % 2 == 0 else ("b", "a")
                got = {k: runs[k]() for k in order}
                pairs[n].append((got["a"], got["b"]))
    out: dict[str, dict[str, Any]] = {}
    for n, ps in pairs.items():
        res: dict[str, Any] = {m: spread([b[m] / a[m] for a, b in ps]) for m in METRICS}
        res["added_work"] = spread([(b["postprocess"] - a["postprocess"]) / a["p50"] for a, b in ps])
        res["plain_ms"] = {m: statistics.median(a[m] for a, _ in ps) for m in (*METRICS, "postprocess")}
        res["on_ms"] = {m: statistics.median(b[m] for _, b in ps) for m in (*METRICS, "postprocess")}
        res["verdict"] = verdict(res["work" if paced else "p50"])
        out[n] = res
    return out


def rows(results: dict[str, dict[str, Any]]) -> list[list[str]]:
    """Table rows: per feature, the paired ratios of the per-frame p50, mean and loop work, and added work."""
    def cell(s: dict[str, float]) -> str:
        return f"{s['median']:.3f}× [{s['lo']:.3f}, {s['hi']:.3f}] ({s['min']:.3f}–{s['max']:.3f})"

    out = []
    for n, r in results.items():
        aw = r["added_work"]
        out.append([n, f"{r['plain_ms']['p50']:.3f}", cell(r["p50"]), cell(r["mean"]), cell(r["work"]),
                    f"{100 * aw['median']:+.1f} % [{100 * aw['lo']:+.1f}, {100 * aw['hi']:+.1f}]", r["verdict"]])
    return out


HEADERS = ["feature", "plain p50 ms", "per frame p50: on / plain, median [95 % CI] (min–max)", "per frame mean",
           "loop work (no capture wait)", "postprocess added / frame p50", f"p50 (paced: loop work) < {GOAL}×"]
