"""A real MJPEG-over-HTTP camera for tests, on 127.0.0.1: a script of connections, each served or refused."""

from __future__ import annotations

import socket
import threading
import time
from typing import Sequence

import cv2
import numpy as np


class MjpegServer:
    """`plan[i]` says what connection i+1 gets: a number of frames (then the connection is closed), 0 to
    be closed at once, or -1 for frames until the server stops. Connections past the plan get -1."""

    def __init__(self, plan: Sequence[int], size: tuple[int, int] = (160, 120), fps: float = 20.0):
        self.plan = list(plan)
        self.size = size
        self.period = 1.0 / fps
        self.requests: list[bytes] = []
        self._sock = socket.socket()
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(16)
        self._sock.settimeout(0.2)
        self.port = self._sock.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)

    def __enter__(self) -> "MjpegServer":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._sock.close()

    def _accept(self) -> None:
        n = 0
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                continue
            frames = self.plan[n] if n < len(self.plan) else -1
            n += 1
            threading.Thread(target=self._serve, args=(conn, frames), daemon=True).start()

    def _serve(self, conn: socket.socket, frames: int) -> None:
        with conn:
            conn.settimeout(5)
            try:
                self.requests.append(conn.recv(4096))
                if frames == 0:
                    return
                conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Type: multipart/x-mixed-replace; boundary=frame\r\n\r\n")
                i = 0
                while not self._stop.is_set() and (frames < 0 or i < frames):
                    img = np.full((self.size[1], self.size[0], 3), (i * 37) % 256, np.uint8)
                    jpeg = cv2.imencode(".jpg", img)[1].tobytes()
                    conn.sendall(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(jpeg)
                                 + jpeg + b"\r\n")
                    i += 1
                    time.sleep(self.period)
            except OSError:
                pass
