"""Text that edgeclf shows or writes: secrets redacted, terminal control characters escaped.

`redact` is the one place that hides credentials in a source string (a stream URL's password, query
parameters such as token=, password=, key=, sig=) before it reaches an event, /status, a log line or
an error message. `printable` escapes control characters (ANSI escape sequences, carriage returns, C1
codes) in text that came from a file, such as a manifest's labels, so that printing it cannot drive the
terminal.
"""

from __future__ import annotations

import re

MASK = "***"
SECRET_PARAMS = ("token", "access_token", "auth", "password", "passwd", "pwd", "pass", "secret", "key", "apikey",
                 "api_key", "sig", "signature", "credential", "credentials", "session")

# scheme://user:password@host -> scheme://user:***@host (a user name alone is kept).
_USERINFO = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^/@\s:?#\"]*):(?P<pw>[^/\s?#\"]*)@")
# ?token=VALUE -> ?token=***; the value ends where a URL, a JSON string or a "URL: message" line ends it.
_QUERY = re.compile(r"(?P<head>[?&;](?:[A-Za-z0-9_.-]*[_.-])?(?:" + "|".join(SECRET_PARAMS) + r")=)"
                    r"(?P<v>[^&;#\s\"'<>\\]*?)(?=[&;#\s\"'<>\\]|:\s|:$|$)", re.IGNORECASE)


def redact(text: str) -> str:
    """`text` with URL passwords and secret query values replaced by ***; other text unchanged."""
    if not text or ("@" not in text and "=" not in text):
        return text
    text = _USERINFO.sub(lambda m: f"{m['head']}:{MASK}@", text)
    return _QUERY.sub(lambda m: m["head"] + (MASK if m["v"] else ""), text)


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def printable(text: object) -> str:
    """str(text) with control and bidi-override characters shown as escapes (\\x1b, \\n, \\u202e)."""
    s = str(text)
    return _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), s)


_JSON_RAW = re.compile(r"[\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def json_line_safe(line: str) -> str:
    """A JSON text with the characters JSON leaves raw but a terminal acts on (C1, U+2028/9) escaped."""
    if line.isascii() and "\x7f" not in line:  # the usual line: nothing to escape, no regex pass (every event)
        return line
    return _JSON_RAW.sub(lambda m: f"\\u{ord(m.group()):04x}", line)
