"""`edgeclf classify` and `edgeclf camera`: their options for typer; the work is in `edgeclf.cli.edge_run` (no
typer: a plain command line runs it without, edgeclf.cli.lean) and `edgeclf.edge`."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from ._app import command
from .options import Bundle, Runtime, Threads

try:  # Python >= 3.9
    from typing import Annotated
except ImportError:  # pragma: no cover
    from typing_extensions import Annotated

from ..imageio import DEFAULT_MAX_PIXELS

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
    options = dict(locals())  # the parameters, before anything else is bound here
    from .edge_run import classify_command

    classify_command(**options)


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
    options = dict(locals())  # the parameters, before anything else is bound here
    from .edge_run import camera_command

    camera_command(**options)
