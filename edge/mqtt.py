"""--mqtt: the camera's state, label changes and summary on an MQTT broker, with Home Assistant discovery.

Topics under the URL's prefix (`mqtt://[user[:password]@]host[:port]/PREFIX`, `mqtts://` for TLS):
`PREFIX/availability` (`online`/`offline`, retained; the broker's last will says `offline` when the
process dies), `PREFIX/state` (retained JSON: label, score, smoothed, frame, fps, unknown_by when unknown;
on every reported change and at most every `interval` seconds otherwise), `PREFIX/change` (JSON, one per
label change the events filter reports, like the `change` event) and
`PREFIX/summary` (retained JSON at exit). Home Assistant discovery configs go to
`DISCOVERY/sensor/NODE_ID/{label,score}/config` (retained) so a sensor appears by itself.

The frame loop only appends to a bounded queue (the oldest message is dropped when it is full, and
counted); one sender thread encodes the frames' JSON and hands messages to paho-mqtt while connected, and
paho's network thread (`loop_start`) connects and reconnects with back-off. So a broker that is away never
slows a frame. The sender wakes at most once per `linger` (50 ms), not per message, and of the retained
states queued meanwhile sends the newest: at hundreds of changes a second, a wake-up of the sender, paho's
thread and the broker per message was most of what --mqtt cost a busy 2-core loop.
paho-mqtt is imported only when --mqtt is given (`pip install 'edgeclf[mqtt]'`). The password (from the
URL or $EDGECLF_MQTT_PASSWORD) is kept out of `repr`, events, /status and error messages.
"""

from __future__ import annotations

import collections
import json
import logging
import os
import re
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable
from urllib.parse import unquote, urlsplit

from edgeclf import __version__
from edgeclf.errors import UsageError
from edgeclf.safetext import redact

log = logging.getLogger(__name__)

PASSWORD_ENV = "EDGECLF_MQTT_PASSWORD"
DEFAULT_PORTS = {"mqtt": 1883, "mqtts": 8883}
_TOPIC_OK = re.compile(r"^[^#+\x00]+$")
_NODE_BAD = re.compile(r"[^A-Za-z0-9_-]+")


@dataclass(frozen=True)
class MqttConfig:
    """Where and how to publish; made by `MqttConfig.parse` from the --mqtt URL and its options."""

    host: str
    port: int
    prefix: str
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    tls: bool = False
    ca: Path | None = None  # CA bundle for mqtts:// (default: the system's)
    cert: Path | None = None  # client certificate (and key) for brokers that ask for one
    key: Path | None = None
    discovery: str | None = "homeassistant"  # None: no Home Assistant discovery
    node_id: str = ""  # Home Assistant's node id and the client id; default: from the prefix and host name
    interval: float = 5.0  # seconds between state messages when the label does not change (0: changes only)
    max_queue: int = 1000  # messages kept while the broker is away; the oldest goes first
    keepalive: int = 30  # seconds; the broker sends the last will after 1.5x this without a word
    reconnect: tuple[int, int] = (1, 30)  # paho's reconnect back-off, seconds (min, max)
    linger: float = 0.05  # seconds the sender waits after the first queued message, to send a burst at once

    @property
    def display(self) -> str:
        """The broker as it may be shown: scheme, user, host, port and prefix; never the password."""
        user = f"{self.username}@" if self.username else ""
        return f"{'mqtts' if self.tls else 'mqtt'}://{user}{self.host}:{self.port}/{self.prefix}"

    def topic(self, name: str) -> str:
        return f"{self.prefix}/{name}"

    @classmethod
    def parse(cls, url: str, *, ca: Path | None = None, cert: Path | None = None, key: Path | None = None,
              discovery: str | None = "homeassistant", node_id: str | None = None, interval: float = 5.0,
              env: dict[str, str] | None = None) -> "MqttConfig":
        """Check the URL and the TLS files before anything starts; the password may come from the env."""
        shown = redact(url)
        try:
            u = urlsplit(url.strip())
            port = u.port
        except ValueError:
            raise UsageError(f"--mqtt {shown}: not a URL; expected mqtt://[user:password@]host[:port]/topic-prefix") \
                from None
        if u.scheme not in DEFAULT_PORTS or not u.hostname:
            raise UsageError(f"--mqtt {shown}: expected mqtt://[user:password@]host[:port]/topic-prefix "
                             "(mqtts:// for TLS)")
        prefix = unquote(u.path).strip("/")
        if not prefix or not _TOPIC_OK.match(prefix) or "#" in url.rpartition("@")[2] or u.query:
            raise UsageError(f"--mqtt {shown}: name a topic prefix without + or #, e.g. mqtt://{u.hostname}/edgeclf/door")
        tls = u.scheme == "mqtts"
        if not tls and (ca or cert or key):
            raise UsageError("--mqtt-ca/--mqtt-cert/--mqtt-key need an mqtts:// URL (TLS)")
        if (cert is None) != (key is None):
            raise UsageError("--mqtt-cert and --mqtt-key go together (the client certificate and its key)")
        for flag, p in (("--mqtt-ca", ca), ("--mqtt-cert", cert), ("--mqtt-key", key)):
            if p is not None and not p.is_file():
                raise UsageError(f"{flag} {p}: no such file; give the PEM file's path")
        if tls:
            _check_pem(ca, cert, key)
        if interval < 0:
            raise UsageError(f"--mqtt-interval {interval}: expected 0 (changes only) or more seconds")
        if discovery is not None and (not discovery or not _TOPIC_OK.match(discovery)):
            raise UsageError(f"--mqtt-discovery {discovery!r}: expected a topic prefix such as homeassistant, or off")
        username = unquote(u.username) if u.username else None
        password = unquote(u.password) if u.password is not None else None
        if password is None:
            password = (env if env is not None else os.environ).get(PASSWORD_ENV) or None
        if password is not None and username is None:
            raise UsageError(f"--mqtt {shown}: a password needs a user name (mqtt://user@host/prefix with "
                             f"${PASSWORD_ENV})")
        _paho()  # installed? (refused here, before any model loads)
        node = _NODE_BAD.sub("_", node_id if node_id else f"edgeclf_{socket.gethostname()}_{prefix}").strip("_")
        return cls(host=u.hostname, port=port or DEFAULT_PORTS[u.scheme], prefix=prefix, username=username,
                   password=password, tls=tls, ca=ca, cert=cert, key=key, discovery=discovery, node_id=node,
                   interval=interval)


def _paho() -> Any:
    """paho.mqtt.client, 2.x (its CallbackAPIVersion); imported only when --mqtt is given."""
    try:
        import paho.mqtt.client as mqtt
    except ImportError:
        mqtt = None
    if mqtt is None or not hasattr(mqtt, "CallbackAPIVersion"):
        raise UsageError("--mqtt needs paho-mqtt 2.x: pip install 'edgeclf[mqtt]'")
    return mqtt


def _check_pem(ca: Path | None, cert: Path | None, key: Path | None) -> None:
    """Load the TLS files the way the connection will, so a wrong one is refused before the camera starts."""
    import ssl

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    for flag, load in (("--mqtt-ca", lambda: ca and ctx.load_verify_locations(cafile=str(ca))),
                       ("--mqtt-cert/--mqtt-key", lambda: cert and ctx.load_cert_chain(str(cert), str(key)))):
        try:
            load()
        except (OSError, ValueError) as e:  # ssl.SSLError is an OSError
            raise UsageError(f"{flag}: cannot be used ({e}); give PEM files (a key without a passphrase)") from None


def discovery_messages(config: MqttConfig, name: str) -> list[tuple[str, dict[str, Any]]]:
    """Home Assistant MQTT discovery: a `label` sensor (attributes: the whole state) and a `score` sensor."""
    if config.discovery is None:
        return []
    node = config.node_id
    device = {"identifiers": [node], "name": name, "manufacturer": "edgeclf", "model": "edgeclf camera",
              "sw_version": __version__}
    common = {"state_topic": config.topic("state"), "availability_topic": config.topic("availability"),
              "payload_available": "online", "payload_not_available": "offline",
              "json_attributes_topic": config.topic("state"), "device": device}
    label = {"name": "Label", "unique_id": f"{node}_label", "value_template": "{{ value_json.label }}",
             "icon": "mdi:cctv", **common}
    score = {"name": "Score", "unique_id": f"{node}_score", "value_template": "{{ value_json.score }}",
             "state_class": "measurement", "icon": "mdi:percent", **common}
    return [(f"{config.discovery}/sensor/{node}/{obj}/config", payload) for obj, payload in
            (("label", label), ("score", score))]


class MqttPublisher:
    """Bounded queue -> sender thread -> paho client (its own network thread reconnects with back-off)."""

    def __init__(self, config: MqttConfig, emit: Callable[..., None], name: str = "edgeclf"):
        self.config = config
        self._emit = emit
        self.name = name
        self._queue: collections.deque[tuple[str, bytes | dict[str, Any], bool]] = collections.deque()  # dict: JSON
        self._cond = threading.Condition()
        self._closing = False
        self._sending = False  # the sender holds a batch taken from the queue
        self._connected = threading.Event()
        self._last_state = 0.0
        self._last_refusal = ""
        self._infos: collections.deque[Any] = collections.deque(maxlen=64)
        self.stats: dict[str, Any] = {"broker": config.display, "connected": False, "connects": 0, "reconnects": 0,
                                      "disconnects": 0, "queued": 0, "sent": 0, "dropped": 0, "unsent": 0,
                                      "coalesced": 0, "refused": None}
        self._hello_topics = frozenset(topic for topic, _, _ in self._hello())
        self._client = self._make_client()
        self._sender = threading.Thread(target=self._send_loop, name="edgeclf-mqtt-send", daemon=True)

    def _make_client(self) -> Any:
        mqtt = _paho()
        c = self.config
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=c.node_id, clean_session=True)
        if c.username is not None:
            client.username_pw_set(c.username, c.password)
        if c.tls:
            try:
                client.tls_set(ca_certs=str(c.ca) if c.ca else None, certfile=str(c.cert) if c.cert else None,
                               keyfile=str(c.key) if c.key else None)
            except (OSError, ValueError) as e:  # ssl.SSLError is an OSError: a file that is not PEM
                raise UsageError(f"--mqtt-ca/--mqtt-cert/--mqtt-key: cannot be used ({e}); give PEM files") from None
        client.will_set(c.topic("availability"), "offline", qos=1, retain=True)
        client.reconnect_delay_set(*c.reconnect)
        client.max_queued_messages_set(100)  # paho's own queue (unacknowledged); ours is the bounded one before it
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        return client

    # -- paho's network thread ----------------------------------------------------------------------------
    def _on_connect(self, _client: Any, _userdata: Any, _flags: Any, reason: Any, _props: Any) -> None:
        if getattr(reason, "is_failure", False):
            why = str(reason)
            self.stats["refused"] = why
            if why != self._last_refusal:  # once per reason, not on every retry
                self._last_refusal = why
                log.error("--mqtt %s: the broker refused the connection (%s); retrying", self.config.display, why)
                self._emit("mqtt_refused", broker=self.config.display, reason=why)
            return
        self.stats["refused"] = None
        self._last_refusal = ""
        self.stats["connects"] += 1
        if self.stats["connects"] > 1:
            self.stats["reconnects"] += 1
        self.stats["connected"] = True
        self._emit("mqtt_connected", broker=self.config.display, reconnect=self.stats["connects"] > 1)
        # Availability and discovery again on every connect: a broker restarted without persistence forgot them.
        with self._cond:
            for topic, payload, retain in reversed(self._hello()):
                self._queue.appendleft((topic, payload, retain))
            self._connected.set()
            self._cond.notify_all()

    def _on_disconnect(self, _client: Any, _userdata: Any, _flags: Any, reason: Any, _props: Any) -> None:
        was = self._connected.is_set()
        self._connected.clear()
        self.stats["connected"] = False
        if was:
            self.stats["disconnects"] += 1
            if not self._closing:
                log.warning("--mqtt %s: disconnected (%s); reconnecting", self.config.display, reason)
                self._emit("mqtt_disconnected", broker=self.config.display, reason=str(reason))

    def _on_publish(self, _client: Any, _userdata: Any, _mid: int, _reason: Any, _props: Any) -> None:
        self.stats["sent"] += 1

    # -- the frame loop's side ----------------------------------------------------------------------------
    def _hello(self) -> list[tuple[str, bytes, bool]]:
        msgs = [(topic, _json(payload), True) for topic, payload in discovery_messages(self.config, self.name)]
        return msgs + [(self.config.topic("availability"), b"online", True)]

    def start(self) -> None:
        c = self.config
        self._client.connect_async(c.host, c.port, keepalive=c.keepalive)
        self._client.loop_start()
        self._sender.start()

    def put(self, name: str, payload: dict[str, Any] | bytes, retain: bool = False) -> None:
        """Queue one message (never blocks); when the queue is full the oldest message is dropped."""
        self._enqueue(((self.config.topic(name), payload if isinstance(payload, bytes) else _json(payload), retain),))

    def _enqueue(self, messages: tuple[tuple[str, bytes | dict[str, Any], bool], ...]) -> None:
        """Queue (topic, payload, retain) messages under one lock; a dict payload (one nobody changes after this
        call) is encoded by the sender thread, off the frame loop."""
        with self._cond:
            idle = not self._queue  # the sender sleeps only on an empty queue: wake it for the first message only
            for message in messages:
                if len(self._queue) >= self.config.max_queue:
                    self._drop_oldest()
                self._queue.append(message)
            self.stats["queued"] = len(self._queue)
            if idle:
                self._cond.notify()

    def _drop_oldest(self) -> None:
        """Drop the oldest queued message but the availability and discovery ones a (re)connect put first: a
        broker that comes back must hear `online` and the discovery configs whatever the frames queued since."""
        hello = self._hello_topics
        at = next((i for i, (topic, _, _) in enumerate(self._queue) if topic not in hello), 0)
        del self._queue[at]
        self.stats["dropped"] += 1

    def frame(self, label: str, score: float, smoothed: float, seq: int, fps: float, *, report: bool,
              previous: str | None, unknown_by: str | None = None, shown: bool = True,
              now: float | None = None) -> None:
        """One frame's answer, under the events filter (--events-only/--events-ignore, edge/decide.py): a
        `change` message exactly when a `change` event is written (same `previous`); the retained state on
        such a change, else at most every `interval` seconds while the label is one the filter shows
        (`shown`), so an ignored label never reaches the state topic. `unknown_by` names the rule that said
        unknown (margin, feature-distance), as in the events."""
        now = time.monotonic() if now is None else now
        periodic = shown and self.config.interval > 0 and now - self._last_state >= self.config.interval
        if not (report or periodic):
            return
        state: dict[str, Any] = {"label": label, "score": round(score, 4), "smoothed": round(smoothed, 4),
                                 "frame": seq, "fps": round(fps, 2), "time": time.time()}
        if unknown_by is not None:
            state["unknown_by"] = unknown_by
        self._last_state = now
        topic = self.config.topic
        change = ((topic("change"), {**state, "previous": previous}, False),) if report else ()
        self._enqueue((*change, (topic("state"), state, True)))

    def _send_loop(self) -> None:
        import paho.mqtt.client as mqtt

        while True:
            with self._cond:
                while not self._closing and not (self._queue and self._connected.is_set()):
                    self._cond.wait(0.5)
                if not self._queue or not self._connected.is_set():
                    return  # closing, and nothing more can go out now
                if self.config.linger > 0 and not self._closing:
                    self._cond.wait(self.config.linger)  # more of a burst arrives without waking this thread
                batch = _newest_state(list(self._queue), self.config.topic("state"))
                self._sending = True  # close() waits for this batch too, not only for the queue
                self.stats["coalesced"] += len(self._queue) - len(batch)
                self._queue.clear()
                self.stats["queued"] = 0
            for i, (topic, data, retain) in enumerate(batch):
                if not isinstance(data, bytes):
                    data = _json(data)
                info = self._client.publish(topic, data, qos=1, retain=retain)
                if info.rc != mqtt.MQTT_ERR_SUCCESS:  # not connected after all, or paho's own queue is full
                    with self._cond:
                        self._queue.extendleft(reversed([(topic, data, retain), *batch[i + 1:]]))
                        self.stats["queued"] = len(self._queue)
                        if info.rc != mqtt.MQTT_ERR_NO_CONN:
                            self._cond.wait(0.2)
                    break
                self._infos.append(info)
            with self._cond:
                self._sending = False
                self._cond.notify_all()

    def close(self, summary: dict[str, Any] | None = None, timeout: float = 5.0) -> None:
        """Publish the summary and `offline`, wait up to `timeout` for them, disconnect; what is left is `unsent`."""
        if self._closing:
            return
        if summary is not None:
            self.put("summary", summary, retain=True)
        self.put("availability", b"offline", retain=True)
        deadline = time.monotonic() + timeout
        with self._cond:  # a short run may end before the first connection is up: give it `timeout`
            while (self._queue or self._sending) and time.monotonic() < deadline:
                self._cond.wait(0.05)
        for info in list(self._infos):
            left = deadline - time.monotonic()
            if left <= 0 or not self._connected.is_set():
                break
            try:
                info.wait_for_publish(left)
            except (RuntimeError, ValueError):
                break
        with self._cond:
            self._closing = True
            self.stats["unsent"] = len(self._queue)
            self._cond.notify_all()
        self._sender.join(timeout=2.0)
        self._client.disconnect()
        self._client.loop_stop()
        self.stats["connected"] = False
        self.stats["queued"] = 0


def _newest_state(batch: list[tuple[str, Any, bool]], state_topic: str) -> list[tuple[str, Any, bool]]:
    """The batch in order without the retained states a later one replaces (availability, discovery, changes and
    the summary all go out)."""
    last = max((i for i, m in enumerate(batch) if m[0] == state_topic and m[2]), default=-1)
    return [m for i, m in enumerate(batch) if not (m[0] == state_topic and m[2]) or i == last]


_ENCODE = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode  # json.dumps builds one per call


def _json(payload: dict[str, Any]) -> bytes:
    return redact(_ENCODE(payload)).encode("utf-8")
