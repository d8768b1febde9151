"""A `camera`/`classify` process without TLS loads no OpenSSL (issue 14: the camera's memory).

paho-mqtt imports `ssl` and `hashlib` at its top, and `--serve`'s http.server imports `ssl` through
http.client: Python's `_ssl` and `_hashlib` then load OpenSSL's libssl and libcrypto, about 4.5 MB of peak
RSS here (docs/bench.md), in a camera that speaks plain mqtt:// and plain HTTP. Those modules are written
for a Python built without OpenSSL: `ssl` is imported in a try (paho, http.client, urllib.request), and
hashlib falls back to CPython's own sha256/md5/blake2. So for a real `edgeclf camera`/`classify` process
whose command line asks for no TLS (no mqtts:// in --mqtt or $EDGECLF_MQTT, no --mqtt-ca/-cert/-key, no
`--runtime tensorflow`), `keep_out()` marks the three modules absent in `sys.modules` -- Python's
documented way to make an import fail -- before anything imports them.

paho-mqtt 2.2 still names `ssl.SSLWantReadError`/`SSLWantWriteError` in the `except` clauses of its
plain-socket reads and writes, which fail with `ssl` None; with --mqtt on, `keep_out()` imports paho
itself and gives it `_WithoutTLS`, whose two exception classes nothing raises (without TLS nothing can).

Only `edgeclf.cli.main` (the process entry) calls it: the in-process test runner never does, and a process
that asked for TLS, or runs any other command, is left alone. tests/edge/test_camera_imports.py checks that
a camera with --mqtt mqtt:// and --serve loads no libssl/libcrypto and still publishes and serves, and that
an mqtts:// line still imports `ssl`.
"""

from __future__ import annotations

import os
import sys
from typing import Mapping, Sequence

COMMANDS = ("camera", "classify")
MODULES = ("ssl", "_ssl", "_hashlib")
_TLS_OPTIONS = ("--mqtt-ca", "--mqtt-cert", "--mqtt-key")


def wants_no_tls(argv: Sequence[str], env: Mapping[str, str] | None = None) -> bool:
    """True for a camera/classify command line that can run without OpenSSL (see the module's docstring)."""
    env = os.environ if env is None else env
    command = next((a for a in argv if not a.startswith("-")), None)
    if command not in COMMANDS:
        return False
    texts = [*argv, env.get("EDGECLF_MQTT", "")]
    if any("mqtts:" in t.lower() for t in texts):
        return False
    if any(a.split("=", 1)[0] in _TLS_OPTIONS for a in argv):
        return False
    return not any(a == "tensorflow" or a.endswith("=tensorflow") for a in argv)


class _WithoutTLS:
    """Stands for `ssl` in paho-mqtt's module: the two errors its socket reads and writes catch."""

    class SSLWantReadError(OSError):
        pass

    class SSLWantWriteError(OSError):
        pass


def uses_mqtt(argv: Sequence[str], env: Mapping[str, str] | None = None) -> bool:
    env = os.environ if env is None else env
    return bool(env.get("EDGECLF_MQTT")) or any(a == "--mqtt" or a.startswith("--mqtt=") for a in argv)


def keep_out(mqtt: bool) -> list[str]:
    """Mark OpenSSL's Python modules absent for this process, unless already imported; returns those marked.
    With `mqtt`, paho-mqtt is imported now, without them (a missing paho is left to --mqtt's own message)."""
    marked = [m for m in MODULES if m not in sys.modules]
    for m in marked:
        sys.modules[m] = None  # type: ignore[assignment]  # `import m` now raises ImportError
    if mqtt:
        try:
            import paho.mqtt.client as client
        except ImportError:
            return marked
        if getattr(client, "ssl", False) is None:
            client.ssl = _WithoutTLS  # type: ignore[attr-defined]
    return marked
