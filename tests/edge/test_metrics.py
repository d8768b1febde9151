"""/metrics (issue 14 part 5): a real HTTP scrape of a running camera, parsed by prometheus_client's strict
text parser; same token rule as /status; counters move between scrapes; histograms are consistent."""

from __future__ import annotations

import io
import json
import threading
import time
import urllib.error
import urllib.request
from typing import Any


from edgeclf.bundle import read_manifest
from edgeclf.edge.events import EventWriter
from edgeclf.edge.loop import CameraConfig, run_camera
from edgeclf.edge.metrics_text import Exposition

from .fakes import FakeCamera, FakeDevice

TOKEN = "metrics-token-1234"


def _scrape(url: str, token: str | None = TOKEN) -> tuple[int, str, dict[str, Any]]:
    req = urllib.request.Request(url + "metrics")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            text = r.read().decode("utf-8")
            from prometheus_client import parser  # dev extra only (not in .venv-tflite; the Pi needs no client)

            return r.status, text, {f.name: f for f in parser.text_string_to_metric_families(text)}
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(), {}


def _value(families: dict[str, Any], family: str, **labels: str) -> float:
    for s in families[family].samples:
        if all(s.labels.get(k) == v for k, v in labels.items()) and s.name in (family, family + "_total"):
            return s.value
    raise AssertionError(f"no sample {family}{labels}")


def test_metrics_scrape_of_a_running_camera(bundles) -> None:
    bundle = bundles.path("b32-float32")
    device = FakeDevice([("frames", 10**9, "red")], period=0.01)
    stream = io.StringIO()
    stop = threading.Event()
    result: dict[str, Any] = {}
    cfg = CameraConfig(source="fake", serve="127.0.0.1:0", token=TOKEN)
    t = threading.Thread(target=lambda: result.update(s=run_camera(
        bundle, cfg, events=EventWriter(stream=stream), source_factory=lambda: FakeCamera(device), stop=stop)),
        daemon=True)
    t.start()
    try:
        deadline = time.monotonic() + 60
        while '"event": "change"' not in stream.getvalue() and time.monotonic() < deadline:
            time.sleep(0.05)
        url = next(json.loads(ln)["url"] for ln in stream.getvalue().splitlines() if '"serving"' in ln)
        assert _scrape(url, token=None)[0] == 401
        assert _scrape(url, token="wrong-token-123")[0] == 401
        code, text, first = _scrape(url)
        assert code == 200
        time.sleep(0.5)
        _, _, second = _scrape(url)
    finally:
        stop.set()
        t.join(timeout=120)
    assert not t.is_alive()
    sha = read_manifest(bundle).sha256
    (info,) = first["edgeclf_bundle_info"].samples
    assert len(sha) == 64 and info.labels["sha256"] == sha and info.labels["edgeclf_version"] and info.labels["bundle"] == bundle.name
    f1, f2 = _value(first, "edgeclf_frames"), _value(second, "edgeclf_frames")
    assert 0 < f1 < f2 <= result["s"]["frames"]
    assert _value(second, "edgeclf_fps") > 0
    labels = {s.labels["label"]: s.value for s in second["edgeclf_label_frames"].samples}
    assert set(labels) <= {"horses", "humans"} and abs(sum(labels.values()) - f2) <= 2  # read a moment apart
    assert _value(second, "edgeclf_unknown_ratio") == 0.0
    assert _value(second, "edgeclf_peak_resident_memory_bytes") > 10e6
    assert _value(second, "edgeclf_resident_memory_bytes") > 10e6
    for name in ("edgeclf_dropped_frames", "edgeclf_reconnects", "edgeclf_stalls", "edgeclf_label_changes"):
        assert _value(second, name) >= 0
    hist = second["edgeclf_stage_seconds"]
    assert hist.type == "histogram"
    for stage in ("capture", "preprocess", "invoke", "postprocess", "output", "total"):
        buckets = [(s.labels["le"], s.value) for s in hist.samples
                   if s.name.endswith("_bucket") and s.labels["stage"] == stage]
        counts = [v for _, v in buckets]
        assert counts == sorted(counts) and buckets[-1][0] == "+Inf"
        count = next(s.value for s in hist.samples if s.name.endswith("_count") and s.labels["stage"] == stage)
        total = next(s.value for s in hist.samples if s.name.endswith("_sum") and s.labels["stage"] == stage)
        assert counts[-1] == count > 0 and total > 0
    assert "edgeclf_mqtt_connected" not in second and "edgeclf_shadow_info" not in second  # not asked for
    assert TOKEN not in text


def test_label_values_are_escaped_so_the_strict_parser_reads_them() -> None:
    e = Exposition()
    e.family("x_total", "counter", "Labels from a manifest.",
             [("", {"label": 'a "quoted"\\label\nwith a newline'}, 3)])
    from prometheus_client import parser  # dev extra only

    (fam,) = parser.text_string_to_metric_families(e.text())
    assert fam.samples[0].labels["label"] == 'a "quoted"\\label\nwith a newline' and fam.samples[0].value == 3
