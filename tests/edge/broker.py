"""A real MQTT broker for the --mqtt tests: Debian's mosquitto on a free loopback port with a temp config,
and a real paho-mqtt subscriber that records what arrives."""

from __future__ import annotations

import getpass
import json
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest


def mosquitto_bin() -> str:
    found = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None)
    if found is None:
        pytest.fail("the --mqtt tests need Debian's mosquitto broker: apt-get install -y mosquitto (.ci/run does)")
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Mosquitto:
    """mosquitto -c CONF on 127.0.0.1:PORT; `stop()` kills it, `start()` brings it back on the same port."""

    def __init__(self, workdir: Path, users: dict[str, str] | None = None, tls: "Certs | None" = None):
        self.port = free_port()
        self.dir = workdir
        lines = [f"listener {self.port} 127.0.0.1", "persistence false", f"user {getpass.getuser()}",
                 "log_dest stderr"]
        self.tls_port = 0
        if tls is not None:  # a second listener: TLS, and a client certificate signed by the test CA required
            self.tls_port = free_port()
            lines += [f"listener {self.tls_port} 127.0.0.1", f"cafile {tls.ca}", f"certfile {tls.server_cert}",
                      f"keyfile {tls.server_key}", "require_certificate true"]
        if users:
            pw = workdir / "passwd"
            for i, (user, password) in enumerate(users.items()):
                subprocess.run(["mosquitto_passwd", "-b", *(["-c"] if i == 0 else []), str(pw), user, password],
                               check=True, capture_output=True)
            lines += ["allow_anonymous false", f"password_file {pw}"]
        else:
            lines.append("allow_anonymous true")
        self.conf = workdir / "mosquitto.conf"
        self.conf.write_text("\n".join(lines) + "\n")
        self.log = workdir / "mosquitto.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> "Mosquitto":
        logf = open(self.log, "ab")
        self.proc = subprocess.Popen([mosquitto_bin(), "-c", str(self.conf)], stdout=logf, stderr=logf)
        logf.close()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return self
            except OSError:
                if self.proc.poll() is not None:
                    raise AssertionError(f"mosquitto exited: {self.log.read_text()[-500:]}")
                time.sleep(0.05)
        raise AssertionError("mosquitto did not listen within 20 s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


class Certs:
    """A throw-away CA (openssl), a server certificate for 127.0.0.1 and a client certificate, all PEM."""

    def __init__(self, d: Path):
        def ossl(*args: str) -> None:
            subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=d)

        self.ca, ca_key = d / "ca.pem", d / "ca.key"
        ossl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=edgeclf test CA",
             "-keyout", str(ca_key), "-out", str(self.ca))
        for who, ext in (("server", "subjectAltName=IP:127.0.0.1"), ("client", "extendedKeyUsage=clientAuth")):
            key, csr, cert = d / f"{who}.key", d / f"{who}.csr", d / f"{who}.pem"
            ossl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={who}", "-keyout", str(key), "-out", str(csr))
            (d / f"{who}.ext").write_text(ext + "\n")
            ossl("x509", "-req", "-in", str(csr), "-CA", str(self.ca), "-CAkey", str(ca_key), "-CAcreateserial",
                 "-days", "2", "-extfile", str(d / f"{who}.ext"), "-out", str(cert))
        self.server_cert, self.server_key = d / "server.pem", d / "server.key"
        self.client_cert, self.client_key = d / "client.pem", d / "client.key"


class Subscriber:
    """A paho-mqtt client subscribed to TOPICS; `messages` holds (topic, payload bytes, retain)."""

    def __init__(self, port: int, topics: list[str], username: str | None = None, password: str | None = None):
        import paho.mqtt.client as mqtt

        self.messages: list[tuple[str, bytes, bool]] = []
        self.lock = threading.Lock()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"test-sub-{port}-{id(self)}")
        if username:
            self.client.username_pw_set(username, password)
        self.client.reconnect_delay_set(1, 2)
        self.ready = threading.Event()  # set once the broker acknowledged the subscription
        self.client.on_connect = lambda c, *_: c.subscribe([(t, 1) for t in topics])
        self.client.on_subscribe = lambda *_: self.ready.set()
        self.client.on_message = self._on_message
        self.client.connect_async("127.0.0.1", port, keepalive=10)
        self.client.loop_start()
        if not self.ready.wait(20):
            self.close()
            raise AssertionError(f"the test subscriber could not subscribe on port {port} within 20 s")

    def _on_message(self, _c: Any, _u: Any, msg: Any) -> None:
        with self.lock:
            self.messages.append((msg.topic, msg.payload, bool(msg.retain)))

    def on(self, topic: str) -> list[bytes]:
        with self.lock:
            return [p for t, p, _ in self.messages if t == topic]

    def wait(self, topic: str, pred: Any = lambda p: True, timeout: float = 30.0, after: int = 0) -> bytes:
        """The first payload on `topic` (past the first `after` ones) for which `pred` holds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for p in self.on(topic)[after:]:
                if pred(p):
                    return p
            time.sleep(0.05)
        raise AssertionError(f"nothing matching on {topic} within {timeout} s; got {self.on(topic)[-3:]}")

    def json(self, topic: str) -> list[dict]:
        return [json.loads(p) for p in self.on(topic)]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
