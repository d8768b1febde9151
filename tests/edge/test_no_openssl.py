"""A camera that asks for no TLS loads no OpenSSL, and its plain MQTT and HTTP still work (edgeclf.cli.no_openssl).

A real `edgeclf camera` process with --mqtt mqtt:// to a real mosquitto and --serve, scraped over real HTTP
while it runs: the broker gets its messages, /metrics answers, and the running process has neither Python's
`_ssl` nor `_hashlib` extension mapped (/proc/PID/maps; OpenCV's own FFmpeg libssl 1.1 is another file), nor the
system's libssl/libcrypto 3 unless `import cv2` alone maps them (Debian's python3-opencv, the 32-bit Pi's OpenCV, links
them through GDAL's MariaDB client and GDCM; scripts/pi-check.sh armhf).
An mqtts:// line is left alone (tests/edge/test_mqtt.py runs one against a TLS broker).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from edgeclf.cli.no_openssl import uses_mqtt, wants_no_tls

from .broker import Mosquitto, Subscriber, free_port
from .conftest import REPO, noise_clip

OPENSSL = re.compile(r"/(_ssl|_hashlib)\.cpython[^/]*\.so$|/lib(ssl|crypto)\.so\.3$")


@pytest.mark.parametrize("argv, env, expected", [
    (["-q", "camera", "b", "--mqtt", "mqtt://h/p", "--serve", "127.0.0.1:0"], {}, True),
    (["classify", "b", "x.png"], {}, True),
    (["camera", "b", "--mqtt", "mqtts://h/p"], {}, False),
    (["camera", "b", "--mqtt=MQTTS://h/p"], {}, False),
    (["camera", "b"], {"EDGECLF_MQTT": "mqtts://h/p"}, False),
    (["camera", "b", "--mqtt", "mqtt://h/p", "--mqtt-ca", "ca.pem"], {}, False),
    (["camera", "b", "--runtime", "tensorflow"], {}, False),
    (["camera", "b", "--runtime=tensorflow"], {}, False),
    (["train", "data"], {}, False),
    (["-v", "info", "b"], {}, False),
    ([], {}, False),
])
def test_which_command_lines_go_without_openssl(argv: list[str], env: dict[str, str], expected: bool) -> None:
    assert wants_no_tls(argv, env) is expected


def test_mqtt_is_seen_in_the_command_line_or_the_environment() -> None:
    assert uses_mqtt(["camera", "b", "--mqtt", "mqtt://h/p"], {})
    assert uses_mqtt(["camera", "b", "--mqtt=mqtt://h/p"], {})
    assert uses_mqtt(["camera", "b"], {"EDGECLF_MQTT": "mqtt://h/p"})
    assert not uses_mqtt(["camera", "b", "--mqtt-interval", "1"], {})


def _mapped_files(maps: str) -> set[str]:
    return {line.split()[-1] for line in maps.splitlines() if len(line.split()) > 5}


def _mapped_by_cv2_alone() -> set[str]:
    """What a process that only imports OpenCV maps: OpenCV's libraries are not the camera's doing."""
    code = "import os, cv2; print(open(f'/proc/{os.getpid()}/maps').read())"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    return _mapped_files(r.stdout)


def _get(url: str, deadline: float) -> bytes:
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                return r.read()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def test_plain_mqtt_and_serve_camera_publishes_and_serves_without_openssl(bundles, tmp_path: Path) -> None:
    broker = Mosquitto(tmp_path).start()
    port = free_port()
    clip = noise_clip(tmp_path / "slow.mp4", 300, 15.0, seed=3)  # 20 s at its own pace (--realtime); stopped below
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONWARNINGS": "ignore"}
    sub = Subscriber(broker.port, ["cams/plain/#"])
    proc = subprocess.Popen([sys.executable, "-m", "edgeclf", "-q", "camera",
                             str(bundles.path("b32-int8")), "--source", str(clip), "--realtime", "--events", os.devnull,
                             "--mqtt", f"mqtt://127.0.0.1:{broker.port}/cams/plain", "--mqtt-interval", "0.2",
                             "--mqtt-discovery", "off", "--serve", f"127.0.0.1:{port}"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=tmp_path)
    try:
        state = json.loads(sub.wait("cams/plain/state", timeout=60))
        metrics = _get(f"http://127.0.0.1:{port}/metrics", time.monotonic() + 30).decode()
        assert proc.poll() is None
        maps = Path(f"/proc/{proc.pid}/maps").read_text().splitlines()
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
        summary = json.loads(sub.wait("cams/plain/summary", timeout=30))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=30)
        sub.close()
        broker.stop()
    assert proc.returncode == 0, err.decode()[-2000:]
    assert "label" in state and summary["frames"] > 0
    assert re.search(r"^edgeclf_frames_total \d+", metrics, re.M), metrics[:500]
    files = _mapped_files("\n".join(maps))
    assert any("ai_edge_litert" in f or "tflite_runtime" in f for f in files)  # the check sees libraries at all
    opencv_own = {f for f in _mapped_by_cv2_alone() if OPENSSL.search(f) and f.endswith(".so.3")}
    found = sorted(f for f in files if OPENSSL.search(f) and f not in opencv_own)
    assert not found, f"{found}; mapped by `import cv2` alone, so not counted: {sorted(opencv_own)}"
