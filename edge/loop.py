"""`edgeclf camera`: the live loop. Frame -> preprocess -> invoke -> postprocess -> events and outputs.

Each frame is timed per stage (capture wait, preprocess, invoke, postprocess, output). Events are JSON
lines: `start`, `change` (the stable label changed), `frame` (every N frames with --every), `source_error`,
`reconnect_failed`, `reconnected`, `stall`, `skipped`, `serving`, the reload events (edge/reload.py;
`bundle_restored` at start, edge/rollback.py) and `summary` last. SIGTERM and SIGINT stop the loop cleanly after the current frame; a second signal kills as
usual. SIGHUP reloads the bundle (verified, self-tested, swapped in between frames, rolled back if worse).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

from edgeclf.edge.capture import FileFeed, LiveFeed
from edgeclf.edge.decide import ChangeReporter, EventsFilter
from edgeclf.edge.events import EventWriter, OnChange, check_command
from edgeclf.edge.integrations import Integrations
from edgeclf.edge.keep import CaptureConfig, Keeper
from edgeclf.edge.model import Classifier
from edgeclf.edge.outputs import Outputs
from edgeclf.edge.recording import SEGMENT_S, check_save_path
from edgeclf.edge.postprocess import SmoothConfig, Smoother, top_k
from edgeclf.edge import rollback
from edgeclf.edge.reload import ReloadConfig, Reloader
from edgeclf.edge.runtime import check_threads
from edgeclf.edge.shadow import check_every as check_shadow_every, check_shadow
from edgeclf.edge.bind import check_bind, parse_bind
from edgeclf.edge.sources import FrameSource, ImageFolderSource, make_source, parse_size
from edgeclf.edge.stats import RunStats, summary_dict
from edgeclf.errors import UsageError
from edgeclf.imageio import DEFAULT_MAX_PIXELS
from edgeclf.preprocess import CROP_MODES
from edgeclf.safetext import redact

if TYPE_CHECKING:  # imported when --serve (http.server, email) or --mqtt (socket, paho) is on
    from edgeclf.edge.mqtt import MqttConfig
    from edgeclf.edge.serve import PreviewServer

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CameraConfig:
    """Everything `edgeclf camera` takes besides the bundle."""

    source: str = "0"
    size: str | None = None  # WIDTHxHEIGHT asked of a camera
    runtime: str | None = None
    threads: int | None = None
    realtime: bool = False
    crop: str | None = None  # None: the manifest's
    top_k: int = 3
    smooth: SmoothConfig = field(default_factory=SmoothConfig)
    events_filter: EventsFilter = field(default_factory=EventsFilter)  # --events-only / --events-ignore
    every: int = 0
    events: Path | None = None
    events_mode: int = 0o600  # permissions of a new --events file: it names the source and the labels seen
    display: bool = False
    save: Path | None = None
    save_segment: float = SEGMENT_S  # --save-segment: seconds of video per segment (a kill loses at most one)
    on_change: str | None = None
    serve: str | None = None
    token: str | None = None
    max_clients: int = 4
    max_frames: int = 0
    max_pixels: int = DEFAULT_MAX_PIXELS  # frames (video, stream, camera, images) larger than this are refused
    stall_timeout: float = 5.0
    reconnect_min: float = 0.5  # first wait before a reconnect; doubles up to reconnect_max
    reconnect_max: float = 30.0
    quiet_native: bool = False  # keep the interpreter's own stderr banner off the terminal (the CLI, unless -v)
    serve_write_timeout: float = 5.0  # a preview client that reads nothing for this long is dropped
    mqtt: MqttConfig | None = None  # --mqtt URL (edge/mqtt.py)
    shadow: Path | None = None  # --shadow BUNDLE, run on every `shadow_every`th frame (edge/shadow.py)
    shadow_every: int = 10
    capture: CaptureConfig | None = None  # --capture DIR: keep frames worth labelling (edge/keep.py)
    reload: ReloadConfig = field(default_factory=ReloadConfig)  # SIGHUP / --watch model updates (edge/reload.py)

    def validate(self) -> None:
        """Refuse unusable flags before anything is loaded or opened."""
        if self.crop is not None and self.crop not in CROP_MODES:
            raise UsageError(f"--crop {self.crop!r}: expected one of {', '.join(CROP_MODES)}")
        if self.top_k < 1:
            raise UsageError(f"--top-k {self.top_k}: expected 1 or more")
        check_threads(self.threads)
        if self.every < 0 or self.max_frames < 0:
            raise UsageError("--every and --max-frames: expected 0 (off) or more")
        if self.stall_timeout < 0 or not 0 < self.reconnect_min <= self.reconnect_max:
            raise UsageError("--stall-timeout must be >= 0 (0: no watchdog) and --reconnect-max > 0")
        if self.max_pixels < 1:
            raise UsageError(f"--max-pixels {self.max_pixels}: expected 1 or more")
        check_shadow_every(self.shadow_every)
        if self.shadow is not None:
            check_shadow(self.shadow)
        if self.max_clients < 1:
            raise UsageError(f"--max-clients {self.max_clients}: expected 1 or more")
        parse_size(self.size)
        if self.serve is not None:
            host, _ = parse_bind(self.serve)
            check_bind(host, self.token)
        if self.save is not None:
            check_save_path(self.save)
        if not self.save_segment > 0:
            raise UsageError(f"--save-segment {self.save_segment}: expected seconds above 0")
        if self.on_change:
            check_command(self.on_change)
        if self.capture is not None:
            self.capture.validate()
        self.reload.validate()
        if self.events is not None:
            parent = self.events.parent
            if parent.exists() and not os.access(parent, os.W_OK) or self.events.is_dir():
                raise UsageError(f"--events {self.events}: cannot write there; pick a writable file path")


@contextlib.contextmanager
def stop_on_signals(stop: threading.Event, reason: dict[str, str],
                    on_hup: Callable[[], None] | None = None) -> Iterator[None]:
    """SIGTERM/SIGINT (and SIGHUP without `on_hup`) set `stop` (the loop finishes its frame and writes the
    summary); with `on_hup`, SIGHUP calls it instead (a reload request) and stays handled."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    sigs = [s for s in (getattr(signal, n, None) for n in ("SIGTERM", "SIGINT", "SIGHUP")) if s is not None]
    old = {s: signal.getsignal(s) for s in sigs}

    def handler(signum: int, _frame: Any) -> None:
        reason.setdefault("stopped", signal.Signals(signum).name)
        stop.set()
        for s, h in old.items():  # a second signal acts as usual (kills)
            signal.signal(s, h)

    def hup(_signum: int, _frame: Any) -> None:
        assert on_hup is not None
        on_hup()

    for s in sigs:
        signal.signal(s, hup if on_hup is not None and s == getattr(signal, "SIGHUP", None) else handler)
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def run_camera(bundle: str | Path, config: CameraConfig, *, events: EventWriter | None = None,
               source_factory: Callable[[], FrameSource] | None = None, stop: threading.Event | None = None,
               classifier: Classifier | None = None) -> dict[str, Any]:
    """Classify frames until the source ends, `max_frames`, a signal or `stop`; return the summary."""
    config.validate()
    stop = stop or threading.Event()
    reason: dict[str, str] = {}
    size = parse_size(config.size)

    def on_skip(path: Path, why: str) -> None:  # only called while reading, after `ev` exists
        ev.emit("skipped", file=str(path), error=why)

    factory = source_factory or (lambda: make_source(config.source, size, on_skip, config.max_pixels))
    first = factory()  # a source that cannot exist is refused before the model loads
    def load(path: Path) -> Classifier:
        return _fits(Classifier.load(path, config.runtime, config.threads, config.crop, quiet=config.quiet_native), config)

    restored = trial = None  # a bundle the last run could not finish swapping, or one that cannot load, or a
    if classifier is None:  # trial it did not finish (edge/rollback.py)
        classifier, restored, trial = rollback.start(bundle, load)
    clf = _fits(classifier, config)
    own_events = events is None
    ev = events or EventWriter(config.events, mode=config.events_mode)
    feed: FileFeed | LiveFeed
    realtime = config.realtime and not first.live
    if realtime and isinstance(first, ImageFolderSource):
        log.warning("--realtime: %s holds images, which have no frame rate; reading every image", first.name)
        realtime = False
    if first.live or realtime:
        backoff = (config.reconnect_min, config.reconnect_max)
        feed = LiveFeed(factory, ev.emit, config.stall_timeout, backoff, pace=not first.live)
    else:
        feed = FileFeed(first)
    stats = RunStats()
    state: dict[str, Any] = {"label": None, "score": 0.0, "smoothed": 0.0, "frame": 0}
    m = clf.manifest
    extra = {"bundle": str(clf.bundle.path), "runtime": f"{clf.runtime.name} {clf.runtime.version}",
             "threads": clf.threads, "source": redact(config.source)}

    server: PreviewServer | None = None
    integ: Integrations | None = None

    def status() -> dict[str, Any]:
        out = {**summary_dict(stats, feed.stats, extra), "last": dict(state)}
        if server is not None:
            out["serve"] = dict(server.stats)
        if config.events is not None:
            out["events"] = dict(ev.stats)
        if integ is not None:
            out.update(integ.status())
        return out

    with contextlib.ExitStack() as stack:
        if own_events:
            stack.callback(ev.close)
        reloader = Reloader(bundle, config.reload, clf, ev.emit, load, trial)
        stack.callback(reloader.close)
        stack.enter_context(stop_on_signals(stop, reason, reloader.request))
        integ = Integrations.open(clf, ev.emit, config.mqtt, config.shadow, config.shadow_every, config.runtime,
                                  config.crop, config.quiet_native)  # label counts; --mqtt, --shadow threads
        stack.callback(integ.close)
        if isinstance(feed, LiveFeed):
            feed.start(first)
        else:
            feed.start()
        stack.callback(feed.close)
        if config.serve is not None:
            from edgeclf.edge.serve import PreviewServer

            host, port = parse_bind(config.serve)
            server = PreviewServer(host, port, config.token, status, max_clients=config.max_clients,
                                   write_timeout=config.serve_write_timeout,
                                   metrics=lambda: integ.metrics(stats, feed.stats, ev.stats if config.events else None))
            url = server.start()
            stack.callback(server.close)
            ev.emit("serving", url=url, token_required=bool(config.token))
            log.info("preview on %s", url)
        outputs = Outputs(stack, config.save, config.display, server, first.fps, config.save_segment)
        stack.callback(outputs.close)
        hook = OnChange(config.on_change) if config.on_change else None
        if hook is not None:
            stack.callback(hook.close)
        keeper = Keeper(config.capture, ev.emit, m.sha256) if config.capture is not None else None
        if keeper is not None:
            stack.callback(keeper.close)
        ev.emit("start", bundle=extra["bundle"], runtime=extra["runtime"], threads=clf.threads,
                source=redact(getattr(feed, "name", None) or first.name), labels=list(m.labels),
                input=f"{m.preprocess.width}x{m.preprocess.height} {m.input.dtype}",
                temperature=clf.calibration.temperature if clf.calibration is not None else None,
                unknown_below=config.smooth.unknown_threshold(clf.calibration),  # docs/unknown.md
                unknown_above_distance=config.smooth.distance_threshold(clf.calibration))
        if restored is not None:
            ev.emit("bundle_restored", bundle=extra["bundle"], sha256=m.sha256, how="at start", why=restored)
        reloader.announce()  # reload_trial_resumed
        stats.started = time.monotonic()
        try:
            _loop(clf, feed, ev, stats, state, config, outputs, hook, stop, reason, keeper, integ, reloader)
        except BaseException:
            reason.setdefault("stopped", "error")
            raise
        finally:
            summary = summary_dict(stats, feed.stats, {**extra, "stopped": reason.get("stopped", "end")})
            if hook is not None:
                summary["on_change"] = {"started": hook.started, "skipped": hook.skipped, "failed": hook.failed}
            if server is not None:
                summary["serve"] = dict(server.stats)
            if config.events is not None:
                summary["events"] = dict(ev.stats)
            if keeper is not None:
                keeper.close()  # its last frames are written before the summary counts them
                summary["capture"] = dict(keeper.stats)
            summary["reload"] = reloader.stopping(clean=reason.get("stopped") != "error")
            if integ is not None:
                integ.finish(summary)  # stops the shadow, publishes the summary over MQTT
            ev.emit("summary", **summary)
    if config.events is not None:  # after close: the last lines' fate is known
        summary["events"] = dict(ev.stats)
    return summary


def _fits(clf: Classifier, config: CameraConfig) -> Classifier:
    """Refuse a bundle the options cannot work with (--threshold LABEL=, --unknown auto, --events-only LABEL):
    before anything starts, and for a reloaded bundle before it is swapped in."""
    Smoother(clf.labels, config.smooth, clf.calibration)
    config.events_filter.check(clf.labels)
    return clf


def _loop(clf: Classifier, feed: Any, ev: EventWriter, stats: RunStats, state: dict[str, Any],
          config: CameraConfig, outputs: Outputs, hook: OnChange | None, stop: threading.Event,
          reason: dict[str, str], keeper: Keeper | None = None,
          integ: Integrations | None = None, reloader: Reloader | None = None) -> None:
    smoother = Smoother(clf.labels, config.smooth, clf.calibration)
    reporter = ChangeReporter(config.events_filter)
    labels = clf.labels
    clock = time.perf_counter
    times = {"capture": 0.0, "preprocess": 0.0, "invoke": 0.0, "postprocess": 0.0, "output": 0.0, "total": 0.0}
    previous = ""
    while True:
        t0 = clock()
        cap = feed.next(stop)
        if cap is None:
            if stop.is_set():
                reason.setdefault("stopped", "stop")
            break
        if reloader is not None and (swapped := reloader.between_frames()) is not None:  # a new bundle, or back
            clf, labels = swapped, swapped.labels
            smoother = Smoother(labels, config.smooth, clf.calibration)
            if keeper is not None:
                keeper.sha256 = clf.manifest.sha256
            if integ is not None:
                integ.use(clf)
        t1 = clock()
        clf.preprocess(cap.image)
        t2 = clock()
        clf.invoke()
        t3 = clock()
        probs = clf.postprocess()
        dec = smoother.update(probs, clf.distance)
        if reloader is not None:
            reloader.observe(dec.index, probs)
        score = float(probs[dec.index] if dec.index >= 0 else probs.max())
        latency_ms = (time.monotonic() - cap.t) * 1e3
        periodic = config.every > 0 and (stats.frames + 1) % config.every == 0  # counts frames used, not captured
        report, reported = reporter.change(dec.label) if dec.changed else (False, None)  # --events-only/-ignore
        periodic = periodic and config.events_filter.reports(dec.label)
        if report or periodic:
            fields: dict[str, Any] = {
                "frame": cap.seq, "label": dec.label, "score": round(score, 4), "smoothed": round(dec.smoothed, 4),
                "latency_ms": round(latency_ms, 2),
                "top": [[lab, round(p, 4)] for lab, p in top_k(probs, labels, config.top_k)]}
            if cap.name:
                fields["file"] = cap.name
            if dec.unknown_by is not None:  # which rule said unknown (docs/unknown.md)
                fields["unknown_by"] = dec.unknown_by
            if report:
                fields["previous"] = reported
            ev.emit("change" if report else "frame", **fields)
        if keeper is not None:
            keeper.offer(cap.image, dec.label, dec.index, probs, labels, dec.changed, bool(previous), cap.seq, cap.name)
        if dec.changed:
            if hook is not None and report:
                hook.fire(dec.label, score, reported or "", cap.seq)
            previous = dec.label
        state.update(label=dec.label, score=round(score, 4), smoothed=round(dec.smoothed, 4), frame=cap.seq)
        if integ is not None:
            integ.frame(cap.image, probs, dec.label, score, dec.smoothed, dec.changed, cap.seq, stats.fps_now,
                        report=report, previous=reported, unknown_by=dec.unknown_by,
                        shown=config.events_filter.reports(dec.label))
        t4 = clock()
        outputs.show(cap.image, dec.label, score, dec.smoothed, stats.fps_now, latency_ms)
        if hook is not None and cap.seq % 16 == 0:
            hook.reap()
        t5 = clock()
        times["capture"], times["preprocess"], times["invoke"] = t1 - t0, t2 - t1, t3 - t2
        times["postprocess"], times["output"], times["total"] = t4 - t3, t5 - t4, t5 - t0
        stats.frame_done(times, time.monotonic())
        if ev.broken:
            reason.setdefault("stopped", "events-closed")
            break
        if outputs.quit_requested:
            reason.setdefault("stopped", "display-quit")
            break
        if config.max_frames and stats.frames >= config.max_frames:
            reason.setdefault("stopped", "max-frames")
            break
