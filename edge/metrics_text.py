"""/metrics: the camera's figures in the Prometheus text exposition format (0.0.4), written by hand so the
Pi needs no client library.

Everything is read from what the loop already keeps (RunStats' constant-memory histograms, the feed's
counters, label counts, the MQTT and shadow stats) when a scraper asks; nothing is added per frame.
Stage latency histograms are cumulative bucket counts read from RunStats' log-spaced bins (a bucket may
undercount by the values of one 0.5 %-wide bin at its edge).
"""

from __future__ import annotations

import math
import os
from typing import Any, Iterable, Mapping

from edgeclf.edge.stats import RunStats, peak_rss_mb

BUCKETS_S = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)
Sample = tuple[str, Mapping[str, str], float]  # (suffix, labels, value)


def _escape(value: str) -> str:
    return str(value).replace("\\", "\\\\").replace("\"", "\\\"").replace("\n", "\\n")


def _number(v: float) -> str:
    if isinstance(v, bool):
        return "1" if v else "0"
    if isinstance(v, int):
        return str(v)
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    return repr(float(v))


class Exposition:
    """Families in the text format: HELP, TYPE, then the samples."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def family(self, name: str, kind: str, help_text: str, samples: Iterable[Sample]) -> None:
        self.lines.append(f"# HELP {name} {help_text}")
        self.lines.append(f"# TYPE {name} {kind}")
        for suffix, labels, value in samples:
            lab = ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items())
            self.lines.append(f"{name}{suffix}{'{' + lab + '}' if lab else ''} {_number(value)}")

    def one(self, name: str, kind: str, help_text: str, value: float) -> None:
        self.family(name, kind, help_text, [("", {}, value)])

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def rss_bytes() -> int | None:
    """The current resident set of this process (Linux /proc), or None elsewhere."""
    try:
        with open("/proc/self/statm", encoding="ascii") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def render(stats: RunStats, feed: Any, info: Mapping[str, str], labels: Mapping[str, int], changes: int,
           unknown: int | None = None, mqtt: Mapping[str, Any] | None = None,
           shadow: Mapping[str, Any] | None = None, events: Mapping[str, Any] | None = None) -> str:
    """The whole /metrics page. `unknown`: frames answered "unknown" (None until that answer exists)."""
    e = Exposition()
    e.family("edgeclf_bundle_info", "gauge", "The running bundle: sha256 and versions as labels (value 1).",
             [("", info, 1)])
    e.one("edgeclf_frames_total", "counter", "Frames classified.", stats.frames)
    e.one("edgeclf_fps", "gauge", "Frames per second, recent (exponential moving average).", round(stats.fps_now, 3))
    samples: list[Sample] = []
    for stage, h in stats.stages.items():
        below, n = h.cumulative(BUCKETS_S)
        samples += [("_bucket", {"stage": stage, "le": _number(b)}, c) for b, c in zip(BUCKETS_S, below)]
        samples += [("_bucket", {"stage": stage, "le": "+Inf"}, n), ("_sum", {"stage": stage}, h.total),
                    ("_count", {"stage": stage}, n)]
    e.family("edgeclf_stage_seconds", "histogram", "Time per frame in each stage (capture wait, preprocess, invoke, "
             "postprocess, output, total).", samples)
    e.family("edgeclf_label_frames_total", "counter", "Frames by the answer given (the stable label).",
             [("", {"label": k}, v) for k, v in sorted(labels.items())])
    e.one("edgeclf_label_changes_total", "counter", "Changes of the stable label.", changes)
    rate = (unknown / stats.frames) if unknown is not None and stats.frames else 0.0
    e.one("edgeclf_unknown_ratio", "gauge", "Share of frames answered unknown (0 while the bundle has no unknown "
          "threshold).", rate)
    for name, key, text in (("dropped_frames", "dropped", "Frames the source produced that the model skipped."),
                            ("reconnects", "reconnects", "Source reconnects."),
                            ("stalls", "stalls", "Source stalls (no frame within --stall-timeout)."),
                            ("source_errors", "source_errors", "Source read errors."),
                            ("skipped_files", "skipped", "Image files that could not be read.")):
        e.one(f"edgeclf_{name}_total", "counter", text, int(getattr(feed, key, 0)))
    rss = rss_bytes()
    if rss is not None:
        e.one("edgeclf_resident_memory_bytes", "gauge", "Resident memory of the camera process.", rss)
    e.one("edgeclf_peak_resident_memory_bytes", "gauge", "Peak resident memory of the camera process.",
          int(peak_rss_mb() * 1024 * 1024))
    if events is not None:
        e.one("edgeclf_events_lost_total", "counter", "Event lines that could not be written.", events.get("lost", 0))
    if mqtt is not None:
        e.one("edgeclf_mqtt_connected", "gauge", "1 while connected to the MQTT broker.", bool(mqtt["connected"]))
        e.one("edgeclf_mqtt_reconnects_total", "counter", "MQTT reconnects after the first connection.",
              mqtt["reconnects"])
        e.one("edgeclf_mqtt_sent_total", "counter", "MQTT messages the broker acknowledged.", mqtt["sent"])
        e.one("edgeclf_mqtt_dropped_total", "counter", "MQTT messages dropped (queue full while the broker was away).",
              mqtt["dropped"])
        e.one("edgeclf_mqtt_queued", "gauge", "MQTT messages waiting for the broker.", mqtt["queued"])
    if shadow is not None:
        e.family("edgeclf_shadow_info", "gauge", "The shadow bundle (value 1 while it runs, 0 once disabled).",
                 [("", {"sha256": shadow["sha256"], "bundle": shadow["bundle"]}, bool(shadow["enabled"]))])
        e.one("edgeclf_shadow_compared_total", "counter", "Frames both bundles classified.", shadow["compared"])
        e.one("edgeclf_shadow_agreed_total", "counter", "Of those, frames with the same top-1 label.", shadow["agreed"])
        e.one("edgeclf_shadow_busy_total", "counter", "Frames offered while the shadow was still busy (skipped).",
              shadow["busy"])
    return e.text()
