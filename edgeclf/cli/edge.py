"""`edgeclf classify` and `edgeclf camera`: options only; the work is in `edgeclf.edge`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, List, Optional

import typer

from ._app import command, settings
from .options import Bundle, Runtime, Threads

try:  # Python >= 3.9
    from typing import Annotated
except ImportError:  # pragma: no cover
    from typing_extensions import Annotated

from ..imageio import DEFAULT_MAX_PIXELS
from ..preprocess import CROP_MODES

# Options shared by both commands, defined once (Bundle, Runtime and Threads: edgeclf.cli.options, shared wider).
Crop = Annotated[Optional[str], typer.Option(
    "--crop", help="How a non-square frame becomes the square input: center (crop the middle; the subject is "
    "centred), letterbox (grey bars; the subject may be anywhere in the frame) or none (squeeze). "
    "Default: the bundle's (center).")]
TopK = Annotated[int, typer.Option("--top-k", help="How many labels to list with their probabilities.")]
MaxPixels = Annotated[int, typer.Option(
    "--max-pixels", help="Refuse images and video/stream frames larger than this many pixels (decompression bombs).")]
Threshold = Annotated[Optional[List[str]], typer.Option(
    "--threshold", metavar="P|LABEL=P", help="Below this (calibrated) probability the answer is 'uncertain': P for "
    "every class, LABEL=P for one class (repeat the option). Default 0: always answer.")]
Unknown = Annotated[Optional[str], typer.Option(
    "--unknown", metavar="off|auto|P", help="Answer 'unknown' when the calibrated top probability is below P; auto: "
    "the bundle's fitted threshold (the default when the bundle has one); off: never.")]
ConfigFile = Annotated[Optional[Path], typer.Option(
    "--config", help="JSON file (YAML with PyYAML) with threshold, thresholds {label: P}, unknown, events_only, "
    "events_ignore; options given on the command line win.")]


@command("classify")
def classify(
    bundle: Bundle,
    images: Annotated[List[Path], typer.Argument(help="Image files, folders of images or globs.")],
    top_k: TopK = 3,
    threshold: Threshold = None,
    unknown: Unknown = None,
    config: ConfigFile = None,
    crop: Crop = None,
    threads: Threads = None,
    runtime: Runtime = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per image (JSON lines).")] = False,
    max_pixels: MaxPixels = DEFAULT_MAX_PIXELS,
) -> None:
    """Classify image files with a bundle: the camera's pipeline on files (label, score, top-k)."""
    from ..edge.decide import decide_options
    from ..edge.files import classify_paths
    from ..edge.model import Classifier
    from ..edge.runtime import check_threads
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
                typer.echo(json_line_safe(json.dumps(r.to_dict(), ensure_ascii=False)))
            typer.echo(f"error: {printable(r.error)}", err=True)
        elif as_json:
            typer.echo(json_line_safe(json.dumps(r.to_dict(), ensure_ascii=False)))
        else:
            others = ", ".join(f"{printable(lab)} {p:.3f}" for lab, p in r.top)
            typer.echo(f"{printable(r.path)}\t{printable(r.label)}\t{r.score:.3f}\t({others})")
    if failed:
        raise typer.Exit(1)


@command("camera")
def camera(
    bundle: Bundle,
    source: Annotated[str, typer.Option(
        "--source", help="Camera index (0), /dev/videoN, picamera[:N], a video file, a folder or glob of images, "
                         "or an rtsp:// / http:// URL.")] = "0",
    size: Annotated[Optional[str], typer.Option("--size", help="Capture size WIDTHxHEIGHT asked of a camera.")] = None,
    threads: Threads = None,
    runtime: Runtime = None,
    realtime: Annotated[bool, typer.Option(
        "--realtime", help="Read a video file at its frame rate, dropping frames the model cannot keep up with "
                           "(default: every frame).")] = False,
    crop: Crop = None,
    top_k: TopK = 3,
    threshold: Threshold = None,
    unknown: Unknown = None,
    config: ConfigFile = None,
    events_only: Annotated[Optional[List[str]], typer.Option(
        "--events-only", metavar="LABEL", help="Write change events (and run --on-change) only for changes into or "
        "out of LABEL (repeat for more; uncertain and unknown are labels too).")] = None,
    events_ignore: Annotated[Optional[List[str]], typer.Option(
        "--events-ignore", metavar="LABEL", help="Write no change event for a change to LABEL; the next event names "
        "the last reported label as previous (repeat for more).")] = None,
    smooth: Annotated[int, typer.Option("--smooth", help="Smooth over the last N frames (1: off).")] = 1,
    smooth_mode: Annotated[str, typer.Option("--smooth-mode", help="mean (moving average) or majority.")] = "mean",
    hysteresis: Annotated[float, typer.Option(
        "--hysteresis", help="Lead another label needs in the smoothed scores before the label changes.")] = 0.1,
    every: Annotated[int, typer.Option("--every", help="Also write an event every N frames (0: changes only).")] = 0,
    events: Annotated[Optional[Path], typer.Option(
        "--events", help="Append events (JSON lines) to this file instead of stdout.")] = None,
    events_mode: Annotated[str, typer.Option(
        "--events-mode", help="Permissions of a new --events file, octal (default 600: owner only).")] = "600",
    display: Annotated[bool, typer.Option("--display", help="Show a window, when a display exists.")] = False,
    save: Annotated[Optional[Path], typer.Option("--save", help="Write the annotated video here (.mp4).")] = None,
    save_segment: Annotated[float, typer.Option(
        "--save-segment", help="Seconds of video per --save segment (FILE, then FILE's stem.001, ...): a kill "
        "loses at most the last one.")] = 60.0,
    on_change: Annotated[Optional[str], typer.Option(
        "--on-change", help="Command to start when the label changes; gets EDGECLF_LABEL and EDGECLF_SCORE.")] = None,
    serve: Annotated[Optional[str], typer.Option(
        "--serve", help="HOST:PORT for an MJPEG preview (/stream) and /status; loopback unless --token.")] = None,
    token: Annotated[Optional[str], typer.Option(
        "--token", envvar="EDGECLF_TOKEN", help="Secret the preview requires (Bearer header or ?token=).")] = None,
    max_clients: Annotated[int, typer.Option("--max-clients", help="Preview streams served at once.")] = 4,
    max_frames: Annotated[int, typer.Option("--max-frames", help="Stop after N frames (0: no limit).")] = 0,
    max_pixels: MaxPixels = DEFAULT_MAX_PIXELS,
    stall_timeout: Annotated[float, typer.Option(
        "--stall-timeout", help="Seconds without a frame before a live source is reopened (0: off).")] = 5.0,
    reconnect_max: Annotated[float, typer.Option(
        "--reconnect-max", help="Longest wait between reconnect attempts, seconds.")] = 30.0,
    capture: Annotated[Optional[Path], typer.Option(
        "--capture", help="Keep frames worth labelling here (DIR/<class>/*.jpg + JSON sidecars): uncertain/unknown, "
                          "low score, label flips and a slow random sample; for `edgeclf train --add`.")] = None,
    capture_below: Annotated[float, typer.Option(
        "--capture-below", help="--capture: keep frames whose top probability is below this.")] = 0.6,
    capture_interval: Annotated[float, typer.Option(
        "--capture-interval", help="--capture: at least this many seconds between kept frames (0: no limit).")] = 5.0,
    capture_sample: Annotated[float, typer.Option(
        "--capture-sample", help="--capture: mean seconds between randomly kept ordinary frames (0: none).")] = 600.0,
    capture_max_mb: Annotated[float, typer.Option(
        "--capture-max-mb", help="--capture: disk cap of the kept frames, MB; the oldest go first.")] = 500.0,
    watch: Annotated[bool, typer.Option(
        "--watch", help="Reload the bundle when its folder is replaced (renamed over, or a symlink repointed), as "
                        "on SIGHUP: verified, self-tested, swapped between frames, rolled back if worse.")] = False,
    watch_interval: Annotated[float, typer.Option(
        "--watch-interval", help="--watch: seconds between looks at the bundle folder.")] = 1.0,
    trial_frames: Annotated[int, typer.Option(
        "--trial-frames", help="After a reload, frames the new bundle is watched for before the old one is let "
                               "go.")] = 30,
    max_unknown_rise: Annotated[float, typer.Option(
        "--max-unknown-rise", help="After a reload: roll back when the rate of uncertain/unknown frames in the "
                                   "trial rises more than this over the old bundle's (0-1).")] = 0.3,
    mqtt: Annotated[Optional[str], typer.Option(
        "--mqtt", envvar="EDGECLF_MQTT", help="Publish state, label changes and the summary to an MQTT broker: "
        "mqtt://[user[:password]@]host[:port]/topic-prefix (mqtts:// for TLS; the password may come from "
        "$EDGECLF_MQTT_PASSWORD instead). Home Assistant discovers the sensors.")] = None,
    mqtt_ca: Annotated[Optional[Path], typer.Option("--mqtt-ca", help="mqtts://: CA certificate (PEM) of the "
                                                    "broker (default: the system's).")] = None,
    mqtt_cert: Annotated[Optional[Path], typer.Option("--mqtt-cert", help="mqtts://: client certificate (PEM).")] = None,
    mqtt_key: Annotated[Optional[Path], typer.Option("--mqtt-key", help="mqtts://: the client certificate's key "
                                                     "(PEM).")] = None,
    mqtt_discovery: Annotated[str, typer.Option("--mqtt-discovery", help="Home Assistant discovery prefix, or off.")]
    = "homeassistant",
    mqtt_node_id: Annotated[Optional[str], typer.Option(
        "--mqtt-node-id", help="Home Assistant node id and MQTT client id (default: edgeclf_<host>_<prefix>).")] = None,
    mqtt_interval: Annotated[float, typer.Option(
        "--mqtt-interval", help="Seconds between state messages while the label stays the same (0: changes only).")]
    = 5.0,
    shadow: Annotated[Optional[Path], typer.Option(
        "--shadow", help="A second bundle to try beside this one: it classifies every Nth frame and its agreement "
                         "is reported in events, the summary, /status and /metrics.")] = None,
    shadow_every: Annotated[int, typer.Option("--shadow-every", help="--shadow: classify every Nth frame.")] = 10,
) -> None:
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
    typer.echo(format_summary(summary), err=True)  # the run's result: shown with -q too
    lost = summary.get("events", {}).get("lost", 0)
    if lost:  # classification went on, but the record is incomplete: a service manager must see a failure
        why = summary["events"].get("error") or "write errors"
        typer.echo(f"error: --events {events}: {lost} event line(s) could not be written ({why}); free space "
                   "or pick another path", err=True)
        raise typer.Exit(1)
    kept = summary.get("capture", {})
    if kept.get("error"):  # classification went on, capturing stopped: not a clean run
        typer.echo(f"error: --capture {capture}: capturing stopped ({kept['error']}); free space or pick a writable "
                   "folder", err=True)
        raise typer.Exit(1)


def _mqtt_config(url: str, **options: Any) -> Any:
    """--mqtt's MqttConfig; edge/mqtt.py (socket, and paho when it connects) is imported only with --mqtt."""
    from ..edge.mqtt import MqttConfig

    return MqttConfig.parse(url, **options)
