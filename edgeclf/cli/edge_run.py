"""The work of `edgeclf classify` and `edgeclf camera`, without typer (issue 14: the camera's memory).

`edgeclf.cli.edge` declares the two commands' options for typer and calls these; `edgeclf.cli.lean` calls them
directly for a plain command line, in a process that never imports typer. The parameters are the commands'
options by name, every one given by the caller: the defaults live in the typer declarations alone (and in
`edgeclf.cli.lean_table`, tested equal to them).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, List, Optional

from .settings import echo, settings


def classify_command(*, bundle: Path, images: List[Path], top_k: int, threshold: Optional[List[str]],
                     unknown: Optional[str], config: Optional[Path], crop: Optional[str], threads: Optional[int],
                     runtime: Optional[str], as_json: bool, max_pixels: int) -> None:
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


def camera_command(*, bundle: Path, source: str, size: Optional[str], threads: Optional[int], runtime: Optional[str],
                   realtime: bool, crop: Optional[str], top_k: int, threshold: Optional[List[str]],
                   unknown: Optional[str], config: Optional[Path], events_only: Optional[List[str]],
                   events_ignore: Optional[List[str]], smooth: int, smooth_mode: str, hysteresis: float, every: int,
                   events: Optional[Path], events_mode: str, display: bool, save: Optional[Path], save_segment: float,
                   on_change: Optional[str], serve: Optional[str], token: Optional[str], max_clients: int,
                   max_frames: int, max_pixels: int, stall_timeout: float, reconnect_max: float,
                   capture: Optional[Path], capture_below: float, capture_interval: float, capture_sample: float,
                   capture_max_mb: float, watch: bool, watch_interval: float, trial_frames: int,
                   max_unknown_rise: float, mqtt: Optional[str], mqtt_ca: Optional[Path], mqtt_cert: Optional[Path],
                   mqtt_key: Optional[Path], mqtt_discovery: str, mqtt_node_id: Optional[str], mqtt_interval: float,
                   shadow: Optional[Path], shadow_every: int) -> None:
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
