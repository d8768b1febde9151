"""--serve: an MJPEG preview (`/stream`), `/status` JSON, Prometheus `/metrics` and a tiny page (`/`), on the
standard library only.

Safe by default: binds 127.0.0.1; any other address needs a token (refused at start otherwise), checked on
every request (`Authorization: Bearer TOKEN` or `?token=TOKEN`, 401 when wrong). Bounded: at most
`max_clients` authorised streams and a few more connections. A connection must send its whole request
within `request_timeout` seconds; while every slot is taken, a new connection pushes out the oldest one
that is still silent, so idle or trickling connections (no token needed) cannot lock out /status and
/stream. When nothing can be pushed out, the new connection gets 503 and is closed without a thread. Each stream is sent the latest frame only; one encoder thread makes at most one JPEG per frame
(no per-client buffers), and a client that does not read within `write_timeout` seconds is dropped.
The loop only copies a frame into a buffer, when the encoder waits for one, so clients cannot slow
classification; the encoder draws the status bar on it.
"""

from __future__ import annotations

import hmac
import json
import logging
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable
from urllib.parse import parse_qs, urlsplit

import numpy as np

from edgeclf.edge.bind import check_bind
from edgeclf.errors import UsageError

log = logging.getLogger(__name__)

SEND_BUFFER = 256 * 1024
METRICS_TYPE = "text/plain; version=0.0.4; charset=utf-8"  # Prometheus text exposition format
EVICT_AFTER_S = 1.0  # a silent connection this old may be pushed out by a new one when every slot is taken

PAGE = b"""<!doctype html><html><head><meta charset="utf-8"><title>edgeclf</title></head>
<body style="background:#111;color:#eee;font-family:sans-serif"><img id="v" style="max-width:100%">
<pre id="s"></pre><script>
const q = location.search; document.getElementById('v').src = '/stream' + q;
setInterval(() => fetch('/status' + q).then(r => r.json()).then(j => {
  document.getElementById('s').textContent = JSON.stringify(j, null, 1); }), 1000);
</script></body></html>"""


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, addr: tuple[str, int], handler: type, preview: "PreviewServer"):
        self.address_family = socket.AF_INET6 if ":" in addr[0] else socket.AF_INET
        self.preview = preview
        self._active = 0
        self._pending: dict[Any, float] = {}  # connections that have not sent their request yet -> accepted at
        self._lock = threading.Lock()
        super().__init__(addr, handler)

    def _push_out_silent(self, now: float) -> bool:
        """Called with the lock held: close pending connections past the request timeout, or else the oldest
        pending one silent for over EVICT_AFTER_S; True when one was closed."""
        p = self.preview
        late = [s for s, t in self._pending.items() if now - t > p.request_timeout]
        if not late and self._active >= p.max_connections and self._pending:
            oldest, t = min(self._pending.items(), key=lambda kv: kv[1])
            if now - t >= EVICT_AFTER_S:
                late = [oldest]
        for sock in late:
            del self._pending[sock]
            p.stats["idle_closed"] += 1
            try:
                sock.shutdown(socket.SHUT_RDWR)  # its handler thread sees EOF and ends
            except OSError:
                pass
        return bool(late)

    def request_started(self, sock: Any) -> None:
        with self._lock:
            self._pending.pop(sock, None)

    def process_request(self, request: Any, client_address: Any) -> None:
        now = time.monotonic()
        with self._lock:
            full = self._active >= self.preview.max_connections
            if full and self._push_out_silent(now):
                full = False  # the pushed-out thread ends at once; the overshoot is that brief
            elif not full and self._pending:
                self._push_out_silent(now)
            if not full:
                self._active += 1
                self._pending[request] = now
        if full:
            self.preview.stats["refused"] += 1
            try:
                request.settimeout(0.2)
                request.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            except OSError:
                pass
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self._lock:
                self._active -= 1
                self._pending.pop(request, None)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "edgeclf"
    protocol_version = "HTTP/1.0"

    def setup(self) -> None:
        self.timeout = self.server.preview.request_timeout  # until the request is in: a silent client is dropped
        super().setup()

    def parse_request(self) -> bool:
        ok = super().parse_request()
        if ok:
            self.server.request_started(self.connection)
            self.connection.settimeout(self.server.preview.write_timeout)  # then: a client that stops reading
        return ok

    def log_message(self, fmt: str, *args: Any) -> None:
        log.debug("serve %s: " + fmt, self.client_address[0], *args)

    def _send(self, code: int, body: bytes, ctype: str, extra: dict[str, str] | None = None) -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        p = self.server.preview
        url = urlsplit(self.path)
        if not p.authorized(self.headers.get("Authorization", ""), url.query):
            p.stats["unauthorized"] += 1
            self._send(401, b'{"error": "missing or wrong token"}\n', "application/json",
                       {"WWW-Authenticate": 'Bearer realm="edgeclf"'})
            return
        if url.path == "/status":
            self._send(200, (json.dumps(p.status()) + "\n").encode(), "application/json")
        elif url.path == "/metrics" and p.metrics is not None:
            self._send(200, p.metrics().encode("utf-8"), METRICS_TYPE)
        elif url.path == "/stream":
            self._stream(p)
        elif url.path in ("/", "/index.html"):
            self._send(200, PAGE, "text/html; charset=utf-8")
        else:
            self._send(404, b'{"error": "not found; try /, /stream, /status or /metrics"}\n', "application/json")

    def _stream(self, p: "PreviewServer") -> None:
        if not p.enter_stream():
            self._send(503, b'{"error": "too many preview clients"}\n', "application/json")
            return
        slow = False
        try:
            # A small send buffer: a client that stops reading is noticed (and dropped) after a frame or two,
            # and the kernel holds little memory for it.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER)
            self.send_response(200)
            self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            last = 0
            while not p.closing.is_set():
                got = p.wait_jpeg(last, timeout=1.0)
                if got is None:
                    continue
                last, jpeg = got
                self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(jpeg)
                                 + jpeg + b"\r\n")
        except (TimeoutError, socket.timeout):
            slow = True
        except (BrokenPipeError, ConnectionResetError):
            pass
        finally:
            p.leave_stream(dropped=slow)
            if slow:
                log.info("serve: dropped a client that stopped reading (%s)", self.client_address[0])


class PreviewServer:
    """Owns the HTTP server thread and the encoder thread; `publish()` is all the loop calls."""

    def __init__(self, host: str, port: int, token: str | None, status: Callable[[], dict[str, Any]],
                 max_clients: int = 4, write_timeout: float = 5.0, jpeg_quality: int = 80, max_fps: float = 15.0,
                 request_timeout: float = 3.0, metrics: Callable[[], str] | None = None):
        check_bind(host, token)
        self.host, self.port = host, port
        self.token = token
        self.status = status
        self.metrics = metrics  # /metrics: the Prometheus text (edge/metrics_text.py)
        self.max_clients = max_clients
        self.max_connections = max_clients + 4
        self.write_timeout = write_timeout
        self.request_timeout = request_timeout  # seconds from connect to a complete request
        self.jpeg_quality = jpeg_quality
        self.min_interval = 1.0 / max_fps if max_fps > 0 else 0.0
        self.closing = threading.Event()
        self.stats = {"clients": 0, "streams_total": 0, "dropped_slow": 0, "refused": 0, "unauthorized": 0,
                      "idle_closed": 0, "published": 0, "encoded": 0}  # frames handed over by the loop; JPEGs made
        self._cond = threading.Condition()
        self._frame: np.ndarray | None = None
        self._frame_seq = 0
        self._ready = True  # the encoder waits for a frame (set by the encoder, cleared by publish)
        self._status: tuple[str, float, float, float, float] | None = None  # the answer drawn on that frame
        self._jpeg: bytes = b""
        self._jpeg_seq = 0
        self._server: _Server | None = None
        self._threads: list[threading.Thread] = []

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    def start(self) -> str:
        try:
            self._server = _Server((self.host, self.port), _Handler, self)
        except OSError as e:
            raise UsageError(f"--serve {self.host}:{self.port}: cannot bind ({e.strerror}); "
                             "pick another port") from None
        self.port = self._server.server_address[1]
        for target, name in ((self._server.serve_forever, "edgeclf-serve"), (self._encode_loop, "edgeclf-encode")):
            t = threading.Thread(target=target, name=name, daemon=True)
            t.start()
            self._threads.append(t)
        return self.url

    def authorized(self, header: str, query: str) -> bool:
        if not self.token:
            return True
        given = ""
        if header.lower().startswith("bearer "):
            given = header[7:].strip()
        elif query:
            given = (parse_qs(query).get("token") or [""])[0]
        return hmac.compare_digest(given.encode(), self.token.encode())

    def wants_frames(self) -> bool:
        """True when a client watches and the encoder waits for its next frame (at most `max_fps` times a
        second): the loop hands over only those frames, not every frame it classifies."""
        return self.stats["clients"] > 0 and self._ready

    def publish(self, image: np.ndarray, status: tuple[str, float, float, float, float] | None = None) -> None:
        """Hand the latest frame to the encoder (a copy; nothing is done without clients), with the answer the
        encoder draws on it (edge/annotate.py's status bar: label, score, smoothed, fps, latency_ms)."""
        if not self.stats["clients"]:
            return
        with self._cond:
            if self._frame is None or self._frame.shape != image.shape:
                self._frame = np.empty_like(image)
            np.copyto(self._frame, image)
            self._status = status
            self._frame_seq += 1
            self._ready = False
            self.stats["published"] += 1
            self._cond.notify_all()

    def _encode_loop(self) -> None:
        import cv2

        from edgeclf.edge.annotate import draw_status

        scratch: np.ndarray | None = None
        done = 0
        while not self.closing.is_set():
            with self._cond:
                self._ready = True  # the next frame published is encoded
                while self._frame_seq == done and not self.closing.is_set():
                    self._cond.wait(0.5)
                if self.closing.is_set() or self._frame is None:
                    continue
                if scratch is None or scratch.shape != self._frame.shape:
                    scratch = np.empty_like(self._frame)
                scratch, self._frame = self._frame, scratch  # the loop writes the next frame into the other one
                status, done = self._status, self._frame_seq
            if status is not None:
                draw_status(scratch, *status)
            ok, buf = cv2.imencode(".jpg", scratch, [cv2.IMWRITE_JPEG_QUALITY, self.jpeg_quality])
            if ok:
                with self._cond:
                    self._jpeg, self._jpeg_seq = buf.tobytes(), done
                    self.stats["encoded"] += 1
                    self._cond.notify_all()
            if self.min_interval:
                self.closing.wait(self.min_interval)

    def wait_jpeg(self, after: int, timeout: float) -> tuple[int, bytes] | None:
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._jpeg_seq <= after and not self.closing.is_set():
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._cond.wait(left)
            if self.closing.is_set():
                return None
            return self._jpeg_seq, self._jpeg

    def enter_stream(self) -> bool:
        with self._cond:
            if self.stats["clients"] >= self.max_clients:
                self.stats["refused"] += 1
                return False
            self.stats["clients"] += 1
            self.stats["streams_total"] += 1
            return True

    def leave_stream(self, dropped: bool = False) -> None:
        with self._cond:
            self.stats["clients"] -= 1
            if dropped:
                self.stats["dropped_slow"] += 1

    def close(self) -> None:
        self.closing.set()
        with self._cond:
            self._cond.notify_all()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        for t in self._threads:
            t.join(timeout=2.0)
