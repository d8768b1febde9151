"""`camera`'s and `classify`'s parameters as `edgeclf.cli.lean` reads a plain command line, without typer.

The typer declarations in `edgeclf.cli.edge` are the interface; this is what `lean.params_of` makes of them, kept
here so that a camera process need not import typer to read them (issue 14: the camera"s memory).
tests/edge/test_cli_lean.py fails when the two differ, and prints this table as it should be
(`python -m edgeclf.cli.lean` prints it too).
"""

from __future__ import annotations

from pathlib import Path

# name, type, repeatable, positional, option names, negative names, environment variable, default, required
TABLE = {
    "camera": (
        ("bundle", Path, False, True, ("--bundle",), (), None, None, True),
        ("source", str, False, False, ("--source",), (), None, "0", False),
        ("size", str, False, False, ("--size",), (), None, None, False),
        ("threads", int, False, False, ("--threads",), (), None, None, False),
        ("runtime", str, False, False, ("--runtime",), (), None, None, False),
        ("realtime", bool, False, False, ("--realtime",), (), None, False, False),
        ("crop", str, False, False, ("--crop",), (), None, None, False),
        ("top_k", int, False, False, ("--top-k",), (), None, 3, False),
        ("threshold", str, True, False, ("--threshold",), (), None, None, False),
        ("unknown", str, False, False, ("--unknown",), (), None, None, False),
        ("config", Path, False, False, ("--config",), (), None, None, False),
        ("events_only", str, True, False, ("--events-only",), (), None, None, False),
        ("events_ignore", str, True, False, ("--events-ignore",), (), None, None, False),
        ("smooth", int, False, False, ("--smooth",), (), None, 1, False),
        ("smooth_mode", str, False, False, ("--smooth-mode",), (), None, "mean", False),
        ("hysteresis", float, False, False, ("--hysteresis",), (), None, 0.1, False),
        ("every", int, False, False, ("--every",), (), None, 0, False),
        ("events", Path, False, False, ("--events",), (), None, None, False),
        ("events_mode", str, False, False, ("--events-mode",), (), None, "600", False),
        ("display", bool, False, False, ("--display",), (), None, False, False),
        ("save", Path, False, False, ("--save",), (), None, None, False),
        ("save_segment", float, False, False, ("--save-segment",), (), None, 60.0, False),
        ("on_change", str, False, False, ("--on-change",), (), None, None, False),
        ("serve", str, False, False, ("--serve",), (), None, None, False),
        ("token", str, False, False, ("--token",), (), "EDGECLF_TOKEN", None, False),
        ("max_clients", int, False, False, ("--max-clients",), (), None, 4, False),
        ("max_frames", int, False, False, ("--max-frames",), (), None, 0, False),
        ("max_pixels", int, False, False, ("--max-pixels",), (), None, 50000000, False),
        ("stall_timeout", float, False, False, ("--stall-timeout",), (), None, 5.0, False),
        ("reconnect_max", float, False, False, ("--reconnect-max",), (), None, 30.0, False),
        ("capture", Path, False, False, ("--capture",), (), None, None, False),
        ("capture_below", float, False, False, ("--capture-below",), (), None, 0.6, False),
        ("capture_interval", float, False, False, ("--capture-interval",), (), None, 5.0, False),
        ("capture_sample", float, False, False, ("--capture-sample",), (), None, 600.0, False),
        ("capture_max_mb", float, False, False, ("--capture-max-mb",), (), None, 500.0, False),
        ("watch", bool, False, False, ("--watch",), (), None, False, False),
        ("watch_interval", float, False, False, ("--watch-interval",), (), None, 1.0, False),
        ("trial_frames", int, False, False, ("--trial-frames",), (), None, 30, False),
        ("max_unknown_rise", float, False, False, ("--max-unknown-rise",), (), None, 0.3, False),
        ("mqtt", str, False, False, ("--mqtt",), (), "EDGECLF_MQTT", None, False),
        ("mqtt_ca", Path, False, False, ("--mqtt-ca",), (), None, None, False),
        ("mqtt_cert", Path, False, False, ("--mqtt-cert",), (), None, None, False),
        ("mqtt_key", Path, False, False, ("--mqtt-key",), (), None, None, False),
        ("mqtt_discovery", str, False, False, ("--mqtt-discovery",), (), None, "homeassistant", False),
        ("mqtt_node_id", str, False, False, ("--mqtt-node-id",), (), None, None, False),
        ("mqtt_interval", float, False, False, ("--mqtt-interval",), (), None, 5.0, False),
        ("shadow", Path, False, False, ("--shadow",), (), None, None, False),
        ("shadow_every", int, False, False, ("--shadow-every",), (), None, 10, False),
    ),
    "classify": (
        ("bundle", Path, False, True, ("--bundle",), (), None, None, True),
        ("images", Path, True, True, ("--images",), (), None, None, True),
        ("top_k", int, False, False, ("--top-k",), (), None, 3, False),
        ("threshold", str, True, False, ("--threshold",), (), None, None, False),
        ("unknown", str, False, False, ("--unknown",), (), None, None, False),
        ("config", Path, False, False, ("--config",), (), None, None, False),
        ("crop", str, False, False, ("--crop",), (), None, None, False),
        ("threads", int, False, False, ("--threads",), (), None, None, False),
        ("runtime", str, False, False, ("--runtime",), (), None, None, False),
        ("as_json", bool, False, False, ("--json",), (), None, False, False),
        ("max_pixels", int, False, False, ("--max-pixels",), (), None, 50000000, False),
    ),
}
