"""--serve (reliability case 17): loopback unless a token, 401 on a wrong one, bounded clients, slow ones dropped,
and classification goes on while 50 clients never read. Loopback only."""

from __future__ import annotations

import io
import json
import re
import socket
import threading
import time
import urllib.error
import urllib.request
from typing import Any

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from edgeclf.cli import app
from edgeclf.edge.events import EventWriter
from edgeclf.edge.loop import CameraConfig, run_camera
from edgeclf.edge.bind import parse_bind
from edgeclf.errors import UsageError

from .fakes import FakeCamera, FakeDevice

# The whole edge suite runs again in the tflite-runtime 2.14 venv (scripts/test.sh).
pytestmark = pytest.mark.tflite_runtime

TOKEN = "s3cret-token-for-tests"
runner = CliRunner()


@pytest.mark.parametrize("bind", ["0.0.0.0:8080", "192.168.1.20:8080", "[::]:8080", "example.com:80"])
def test_non_loopback_without_token_refuses_to_start(tmp_path, bind: str) -> None:
    # The bundle and camera do not exist: the refusal comes first, before anything is loaded or opened.
    r = runner.invoke(app, ["camera", str(tmp_path / "no-bundle"), "--source", "7", "--serve", bind])
    assert r.exit_code == 2
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "non-loopback" in lines[0] and "--token" in lines[0]


def test_bind_parsing_and_short_tokens(tmp_path) -> None:
    assert parse_bind("8080") == ("127.0.0.1", 8080)
    assert parse_bind(":0") == ("127.0.0.1", 0)
    assert parse_bind("[::1]:9000") == ("::1", 9000)
    with pytest.raises(UsageError, match="expected HOST:PORT"):
        parse_bind("localhost:http")
    r = runner.invoke(app, ["camera", str(tmp_path), "--serve", "0.0.0.0:8080", "--token", "abc"])
    assert r.exit_code == 2 and "at least 8 characters" in r.stderr


class _Live:
    """run_camera in a thread on an endless fake camera with big noisy frames, serving on a free port."""

    def __init__(self, bundle, **config: Any):
        rng = np.random.default_rng(0)
        images = [rng.integers(0, 256, (480, 640, 3), np.uint8) for _ in range(4)]
        self.device = FakeDevice([("frames", 10**9, "red")], period=0.01, images=images)
        self.stream = io.StringIO()
        self.stop = threading.Event()
        self.result: dict[str, Any] = {}
        cfg = CameraConfig(source="fake", serve="127.0.0.1:0", **config)

        def run() -> None:
            self.result["summary"] = run_camera(bundle, cfg, events=EventWriter(stream=self.stream),
                                                source_factory=lambda: FakeCamera(self.device), stop=self.stop)

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        self.url = self._wait_for("serving")["url"].rstrip("/")
        self._wait_for("change")  # the first frame has been classified

    def _wait_for(self, event: str, timeout: float = 30) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.stream.getvalue().splitlines():
                e = json.loads(line)
                if e["event"] == event:
                    return e
            time.sleep(0.05)
        raise AssertionError(f"no {event} event")

    def get(self, path: str, token: str | None = None, header: bool = True) -> tuple[int, bytes]:
        url = self.url + path
        req = urllib.request.Request(url)
        if token is not None and header:
            req.add_header("Authorization", f"Bearer {token}")
        elif token is not None:
            req = urllib.request.Request(url + ("&" if "?" in url else "?") + f"token={token}")
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def close(self) -> dict:
        self.stop.set()
        self.thread.join(timeout=120)  # an upper bound: under qemu emulation a stop took over 15 s
        assert not self.thread.is_alive()
        return self.result["summary"]


@pytest.fixture()
def live(bundles):
    lv = _Live(bundles.path("rgb32-float32"), token=TOKEN, max_clients=2, serve_write_timeout=0.5)
    yield lv
    if lv.thread.is_alive():
        lv.close()


def _read_one_jpeg(sock: socket.socket) -> np.ndarray:
    data = b""
    while b"\xff\xd9" not in data[data.find(b"\xff\xd8"):] or b"\xff\xd8" not in data:
        chunk = sock.recv(65536)
        assert chunk, data[:200]
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    assert b"200 OK" in head and b"multipart/x-mixed-replace" in head
    start = rest.find(b"\xff\xd8")
    return cv2.imdecode(np.frombuffer(rest[start:rest.find(b"\xff\xd9", start) + 2], np.uint8), cv2.IMREAD_COLOR)


def _open_stream(url: str, path: str, rcvbuf: int | None = None) -> socket.socket:
    host, port = url.split("//")[1].split(":")
    s = socket.socket()
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.connect((host, int(port)))
    s.sendall(f"GET {path} HTTP/1.0\r\nHost: x\r\n\r\n".encode())
    return s


def test_token_is_checked_on_every_request(live) -> None:
    assert live.get("/status")[0] == 401
    assert live.get("/status", "wrong-token-here")[0] == 401
    assert live.get("/stream", "wrong-token-here")[0] == 401
    code, body = live.get("/status", TOKEN)
    assert code == 200
    status = json.loads(body)
    assert status["frames"] > 0 and status["last"]["label"] in ("red", "green", "blue") and "stages_ms" in status
    assert live.get("/status", TOKEN, header=False)[0] == 200  # ?token= for browsers
    assert live.get("/", TOKEN)[0] == 200 and live.get("/nope", TOKEN)[0] == 404
    s = _open_stream(live.url, f"/stream?token={TOKEN}")
    s.settimeout(10)
    frame = _read_one_jpeg(s)
    assert frame.shape == (480, 640, 3)
    s.close()
    summary = live.close()
    assert summary["serve"]["unauthorized"] == 3 and summary["serve"]["streams_total"] == 1


@pytest.mark.timing
def test_fifty_clients_that_never_read(live) -> None:
    def status() -> dict:
        return json.loads(live.get("/status", TOKEN)[1])

    threads_before = threading.active_count()
    frames_before = status()["frames"]
    socks = [_open_stream(live.url, f"/stream?token={TOKEN}", rcvbuf=4096) for _ in range(50)]
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            st = status()
            if st["serve"]["dropped_slow"] >= 2 and st["serve"]["refused"] + st["serve"]["dropped_slow"] == 50:
                break  # every one of the 50 was either refused or served until it stopped reading, then dropped
            assert threading.active_count() <= threads_before + 6 + 2  # max_clients + 4 connections, bounded
            time.sleep(0.2)
        assert st["serve"]["dropped_slow"] >= 2 and st["serve"]["clients"] == 0  # the readers that never read
        assert st["serve"]["refused"] + st["serve"]["dropped_slow"] == 50  # the rest got 503, never a thread each
        assert st["serve"]["streams_total"] == st["serve"]["dropped_slow"]
        assert st["frames"] > frames_before  # classification went on throughout
        assert live.thread.is_alive()
    finally:
        for s in socks:
            s.close()
    frames_mid = status()["frames"]
    s = _open_stream(live.url, f"/stream?token={TOKEN}")  # a well-behaved client still gets served
    s.settimeout(10)
    assert _read_one_jpeg(s).shape == (480, 640, 3)
    s.close()
    deadline = time.monotonic() + 60  # classification goes on after the 50 are gone (a stop ends it at once)
    while status()["frames"] <= frames_mid and time.monotonic() < deadline:
        time.sleep(0.05)
    summary = live.close()
    assert summary["frames"] > frames_mid and summary["stopped"] == "stop"


def test_a_preview_client_costs_the_loop_only_the_frames_it_is_sent(live) -> None:
    """The loop hands over a frame only when the encoder waits for one (at most 15 a second), not every frame it
    classifies (at 600 frames a second annotating and copying each cost a third of each frame), and the encoder
    draws the status bar: every frame handed over is encoded, and the watcher gets annotated JPEGs."""
    s = _open_stream(live.url, f"/stream?token={TOKEN}")
    s.settimeout(10)
    data, jpegs = b"", []
    while len(jpegs) < 5:  # the multipart parts: --frame, headers with Content-Length, the JPEG
        chunk = s.recv(65536)
        assert chunk, data[:200]
        data += chunk
        while (m := re.search(rb"--frame\r\n.*?Content-Length: (\d+)\r\n\r\n", data, re.S)) is not None:
            end = m.end() + int(m[1])
            if len(data) < end:
                break
            jpegs.append(cv2.imdecode(np.frombuffer(data[m.end():end], np.uint8), cv2.IMREAD_COLOR))
            data = data[end:]
    s.close()
    summary = live.close()
    serve = summary["serve"]
    assert all(j.shape == (480, 640, 3) for j in jpegs) and serve["encoded"] >= 5
    for j in jpegs:  # the status bar, drawn by the encoder: the top band darkened to a third (noise frames)
        assert j[2:22].mean() < 0.75 * j[60:].mean()  # the band is 25 rows at 640x480
    assert serve["encoded"] <= serve["published"] <= serve["encoded"] + 1  # none handed over for nothing
    assert serve["published"] < summary["frames"]  # the fake camera's 100 frames a second outrun 15 JPEGs a second
