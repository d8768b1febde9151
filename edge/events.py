"""Event lines and the --on-change hook.

`EventWriter` writes one JSON object per line to stdout or a file (appended). Each line goes out in a
single write and is flushed, so a reader (or a kill) never sees half a line; it is safe to call from the
capture and serving threads. `OnChange` starts a command with the new label in its environment and never
waits for it: children are reaped as the loop runs, and at most a few run at once.
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import subprocess
import sys
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

from edgeclf.errors import UsageError
from edgeclf.safetext import json_line_safe, redact

log = logging.getLogger(__name__)


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


class EventWriter:
    """JSON lines to `path` (appended, created 0600 if missing) or to `stream` (stdout by default).

    Every line passes through `redact`: whatever a field holds, a stream URL's password or token is not
    written."""

    def __init__(self, path: Path | None = None, stream: IO[str] | None = None, mode: int = 0o600):
        self.path = path
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._stream = stream if stream is not None else sys.stdout
        self.broken = False  # the reader went away (closed pipe)
        if path is not None:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, mode)
                if os.fstat(self._fd).st_size == 0:
                    os.fchmod(self._fd, mode)  # a new file gets `mode` exactly, whatever the umask
            except OSError as e:
                raise UsageError(f"--events {path}: cannot be written ({e.strerror}); pick a writable path") from None

    def emit(self, event: str, **fields: Any) -> None:
        record = {"ts": now_iso(), "event": event, **fields}
        line = json_line_safe(redact(json.dumps(record, ensure_ascii=False, separators=(", ", ": ")))) + "\n"
        with self._lock:
            if self.broken:
                return
            try:
                if self._fd is not None:
                    data = line.encode("utf-8")
                    while data:
                        data = data[os.write(self._fd, data):]
                else:
                    self._stream.write(line)
                    self._stream.flush()
            except BrokenPipeError:
                self.broken = True
            except OSError as e:
                self.broken = True
                log.error("events: cannot write (%s); events stop here", e)

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                try:
                    os.fsync(self._fd)
                except OSError:
                    pass
                os.close(self._fd)
                self._fd = None


class OnChange:
    """Run `command` (split like a shell would, no shell) on each label change, without blocking."""

    def __init__(self, command: str, max_running: int = 4):
        try:
            self.argv = shlex.split(command)
        except ValueError as e:
            raise UsageError(f"--on-change {command!r}: cannot be split into words ({e}); check the quotes") from None
        if not self.argv:
            raise UsageError("--on-change: empty command")
        self.max_running = max_running
        self._running: list[subprocess.Popen[bytes]] = []
        self.started = 0
        self.skipped = 0
        self.failed = 0

    def fire(self, label: str, score: float, previous: str, frame: int) -> bool:
        """Start the command (False when too many are still running or it cannot start)."""
        self.reap()
        if len(self._running) >= self.max_running:
            self.skipped += 1
            log.warning("--on-change: %d commands still running; skipped the change to %s", len(self._running), label)
            return False
        env = {**os.environ, "EDGECLF_LABEL": label, "EDGECLF_SCORE": f"{score:.4f}",
               "EDGECLF_PREVIOUS_LABEL": previous, "EDGECLF_FRAME": str(frame)}
        try:
            proc = subprocess.Popen(self.argv, env=env, stdin=subprocess.DEVNULL, start_new_session=True)
        except OSError as e:
            self.failed += 1
            log.error("--on-change: cannot run %s (%s)", self.argv[0], e.strerror or e)
            return False
        self._running.append(proc)
        self.started += 1
        return True

    def reap(self) -> None:
        """Collect finished children (no zombies), without waiting."""
        still = []
        for p in self._running:
            code = p.poll()
            if code is None:
                still.append(p)
            elif code != 0:
                self.failed += 1
                log.warning("--on-change: %s exited with %d", self.argv[0], code)
        self._running = still

    def close(self, timeout: float = 2.0) -> None:
        """Give running commands a moment to finish; leave the rest running detached (own session)."""
        import time

        deadline = time.monotonic() + timeout
        while self._running and time.monotonic() < deadline:
            self.reap()
            time.sleep(0.02)
        if self._running:
            log.warning("--on-change: %d command(s) still running at exit; left running", len(self._running))
