"""The work of `edgeclf classify` and `edgeclf camera`, without typer (issue 14: the camera's memory).

`edgeclf.cli.edge` declares the two commands' options for typer and calls these; `edgeclf.cli.lean` calls them
directly for a plain command line, in a process that never imports typer. The parameters are the commands'
options, with the same names and defaults (tests/edge/test_cli_lean.py holds the two to each other).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, List, Optional

from ..imageio import DEFAULT_MAX_PIXELS
from .settings import echo, settings


def classify_command(bundle: Path, images: List[Path], top_k: int = 3, threshold: Optional[List[str]] = None,
                     unknown: Optional[str] = None, config: Optional[Path] = None, crop: Optional[str] = None,
                     threads: Optional[int] = None, runtime: Optional[str] = None, as_json: bool = False,
                     max_pixels: int = DEFAULT_MAX_PIXELS) -> None:
    """Classify image files with a bundle: the camera's pipeline on files (label, score, top-k)."""
    from ..edge.decide import decide_options
    from ..edge.files import classify_paths
    from ..edge.model import Classifier
    from ..edge.runtime import check_threads
    from ..preprocess import CROP_MODES
    from ..errors import UsageError
    from ..safetext import json_line_safe, printable

    decision, _ = decide_options(threshold, unknown, config)  # --threshold, --unknown, --config checked before loading
    check_threads(threads)
    if top_k < 1:
        raise UsageError(f"--top-k {top_k}: expected 1 or more")
    if max_pixels < 1:
        raise UsageError(f"--max-pixels {max_pixels}: expected 1 or more")
    if crop is not None and crop not in CROP_MODES:
        raise UsageError(f"--crop {crop!r}: expected one of {', '.join(CROP_MODES)}")
    clf = Classifier.load(bundle, runtime, threads, crop, quiet=not settings.verbose)
    failed = 0
    # Labels and file names come from files: control characters are escaped, never sent to the terminal.
    for r in classify_paths(clf, images, top_k, decision, max_pixels):
        if r.error:
            failed += 1
            if as_json:
                echo(json_line_safe(json.dumps(r.to_dict(), ensure_ascii=False)))
            echo(f"error: {printable(r.error)}", err=True)
        elif as_json:
            echo(json_line_safe(json.dumps(r.to_dict(), ensure_ascii=False)))
        else:
            others = ", ".join(f"{printable(lab)} {p:.3f}" for lab, p in r.top)
            echo(f"{printable(r.path)}\t{printable(r.label)}\t{r.score:.3f}\t({others})")
    if failed:
        raise SystemExit(1)


def camera_command(bundle: Path, source: str = "0", size: Optional[str] = None, threads: Optional[int] = None,
                   runtime: Optional[str] = None, realtime: bool = False, crop: Optional[str] = None, top_k: int = 3,
                   threshold: Optional[List[str]] = None, unknown: Optional[str] = None, config: Optional[Path] = None,
                   events_only: Optional[List[str]] = None, events_ignore: Optional[List[str]] = None, smooth: int = 1,
                   smooth_mode: str = "mean", hysteresis: float = 0.1, every: int = 0, events: Optional[Path] = None,
                   events_mode: str = "600", display: bool = False, save: Optional[Path] = None,
                   save_segment: float = 60.0, on_change: Optional[str] = None, serve: Optional[str] = None,
                   token: Optional[str] = None, max_clients: int = 4, max_frames: int = 0,
                   max_pixels: int = DEFAULT_MAX_PIXELS, stall_timeout: float = 5.0, reconnect_max: float = 30.0,
                   capture: Optional[Path] = None, capture_below: float = 0.6, capture_interval: float = 5.0,
                   capture_sample: float = 600.0, capture_max_mb: float = 500.0, watch: bool = False,
                   watch_interval: float = 1.0, trial_frames: int = 30, max_unknown_rise: float = 0.3,
                   mqtt: Optional[str] = None, mqtt_ca: Optional[Path] = None, mqtt_cert: Optional[Path] = None,
                   mqtt_key: Optional[Path] = None, mqtt_discovery: str = "homeassistant",
                   mqtt_node_id: Optional[str] = None, mqtt_interval: float = 5.0, shadow: Optional[Path] = None,
                   shadow_every: int = 10) -> None:
    """Classify live frames from a camera, video, folder or stream; JSON events and a summary at exit."""
    from ..edge.keep import CaptureConfig
    from ..edge.loop import CameraConfig, run_camera
    from ..edge.reload import ReloadConfig
    from ..edge.decide import decide_options
    from ..edge.sources import quiet_opencv
    from ..edge.stats import format_summary

    if not settings.verbose:
        quiet_opencv()
    decision, events_filter = decide_options(threshold, unknown, config, events_only, events_ignore, window=smooth,
                                             mode=smooth_mode, hysteresis=hysteresis)

    try:
        mode = int(events_mode, 8)
    except ValueError:
        mode = -1
    if not 0 <= mode <= 0o777:
        from ..errors import UsageError

        raise UsageError(f"--events-mode {events_mode!r}: expected octal permissions such as 600 or 640")
    config = CameraConfig(
        source=source, size=size, runtime=runtime, threads=threads, realtime=realtime, crop=crop, top_k=top_k,
        smooth=decision, events_filter=events_filter, every=every, events=events, events_mode=mode,
        display=display, save=save, save_segment=save_segment, on_change=on_change, serve=serve, token=token or None, max_clients=max_clients,
        max_frames=max_frames, max_pixels=max_pixels, quiet_native=not settings.verbose, stall_timeout=stall_timeout, reconnect_max=reconnect_max,
        capture=None if capture is None else CaptureConfig(capture, capture_below, capture_interval, capture_sample,
                                                           capture_max_mb),
        reload=ReloadConfig(watch, watch_interval, trial_frames, max_unknown_rise),
        mqtt=None if mqtt is None else _mqtt_config(
            mqtt, ca=mqtt_ca, cert=mqtt_cert, key=mqtt_key, discovery=None if mqtt_discovery == "off" else mqtt_discovery,
            node_id=mqtt_node_id, interval=mqtt_interval),
        shadow=shadow, shadow_every=shadow_every)
    summary = run_camera(bundle, config)
    echo(format_summary(summary), err=True)  # the run's result: shown with -q too
    lost = summary.get("events", {}).get("lost", 0)
    if lost:  # classification went on, but the record is incomplete: a service manager must see a failure
        why = summary["events"].get("error") or "write errors"
        echo(f"error: --events {events}: {lost} event line(s) could not be written ({why}); free space "
                   "or pick another path", err=True)
        raise SystemExit(1)
    kept = summary.get("capture", {})
    if kept.get("error"):  # classification went on, capturing stopped: not a clean run
        echo(f"error: --capture {capture}: capturing stopped ({kept['error']}); free space or pick a writable "
                   "folder", err=True)
        raise SystemExit(1)


def _mqtt_config(url: str, **options: Any) -> Any:
    """--mqtt's MqttConfig; edge/mqtt.py (socket, and paho when it connects) is imported only with --mqtt."""
    from ..edge.mqtt import MqttConfig

    return MqttConfig.parse(url, **options)
