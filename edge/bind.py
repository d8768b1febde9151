"""--serve's address: parsing HOST:PORT and refusing a bind the network could watch without a token.

Apart from `edgeclf.edge.serve` (http.server, and through http.client ssl) so a camera without --serve
checks its options without importing either."""

from __future__ import annotations

import ipaddress

from edgeclf.errors import UsageError


def parse_bind(value: str) -> tuple[str, int]:
    """"HOST:PORT", "[::1]:PORT" or "PORT" -> (host, port). Port 0 picks a free port."""
    v = value.strip()
    host, port = "127.0.0.1", v
    if v.startswith("["):
        host, _, port = v[1:].partition("]")
        port = port.lstrip(":")
    elif ":" in v:
        host, _, port = v.rpartition(":")
        host = host or "127.0.0.1"
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise UsageError(f"--serve {value!r}: expected HOST:PORT, e.g. 127.0.0.1:8080")
    return host, int(port)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_bind(host: str, token: str | None) -> None:
    """Refuse a non-loopback bind without a token: anyone on the network could watch the camera."""
    if not is_loopback(host) and not token:
        raise UsageError(f"--serve {host}: binding a non-loopback address lets anyone on the network watch the camera; "
                         "add --token SECRET (or set EDGECLF_TOKEN), or bind 127.0.0.1 and use an ssh tunnel")
    if token is not None and len(token) < 8:
        raise UsageError("--token: use at least 8 characters (e.g. `openssl rand -hex 16`)")
