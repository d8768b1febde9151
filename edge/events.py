"""Event lines and the --on-change hook.

`EventWriter` writes one JSON object per line to stdout or a file (appended). Each line goes out in a
single write and is flushed, so a reader (or a kill) never sees half a line; it is safe to call from the
capture and serving threads. `OnChange` starts a command with the new label in its environment and never
waits for it: children are reaped as the loop runs, and at most a few run at once.
"""

from __future__ import annotations

import collections
import contextlib
import json
import logging
import os
import shlex
import shutil
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any

from edgeclf.errors import UsageError
from edgeclf.safetext import json_line_safe, redact

log = logging.getLogger(__name__)


_ENCODE = json.JSONEncoder(ensure_ascii=False, separators=(", ", ": ")).encode  # json.dumps builds one per call
_second: tuple[int, str] = (-1, "")  # the last whole second and its text: the date is formatted once a second


def now_iso() -> str:
    """UTC with milliseconds, as datetime's isoformat(timespec="milliseconds") writes it."""
    global _second
    sec, ns = divmod(time.time_ns(), 1_000_000_000)
    last = _second
    if last[0] != sec:
        last = _second = (sec, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec)))
    return f"{last[1]}.{ns // 1_000_000:03d}+00:00"


class EventWriter:
    """JSON lines to `path` (appended, created 0600 if missing) or to `stream` (stdout by default).

    Every line passes through `redact`: whatever a field holds, a stream URL's password or token is not
    written. A file that cannot be written (disk full, quota, I/O error) does not stop the camera: the
    error is logged once, lines wait in a bounded queue, writing is retried with back-off and the queue is
    written in order once it works again; a line cut short by the failure is truncated away, so the file
    only ever holds whole lines. `stats` says how it goes (also in /status); lines that could not be kept
    are counted in `stats["lost"]` and make `edgeclf camera` exit non-zero.
    """

    def __init__(self, path: Path | None = None, stream: IO[str] | None = None, mode: int = 0o600,
                 retry: tuple[float, float] = (1.0, 60.0), max_pending: int = 10_000):
        self.path = path
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._regular = False
        self._stream = stream if stream is not None else sys.stdout
        self.broken = False  # the reader went away (closed pipe)
        self.retry = retry
        self.max_pending = max_pending
        self._pending: collections.deque[bytes] = collections.deque()
        self._retry_at = 0.0
        self._delay = retry[0]
        self.stats: dict[str, Any] = {"written": 0, "pending": 0, "lost": 0, "write_errors": 0, "error": None}
        if path is not None:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, mode)
                st = os.fstat(self._fd)
                self._regular = stat.S_ISREG(st.st_mode)
                if self._regular and st.st_size == 0:
                    os.fchmod(self._fd, mode)  # a new file gets `mode` exactly, whatever the umask
            except OSError as e:
                raise UsageError(f"--events {path}: cannot be written ({e.strerror}); pick a writable path") from None

    @property
    def failing(self) -> bool:
        """True while lines are waiting because the file cannot be written."""
        return bool(self._pending)

    def emit(self, event: str, **fields: Any) -> None:
        record = {"ts": now_iso(), "event": event, **fields}
        line = json_line_safe(redact(_ENCODE(record))) + "\n"
        with self._lock:
            if self.broken:
                return
            if self._fd is None:
                try:
                    self._stream.write(line)
                    self._stream.flush()
                    self.stats["written"] += 1
                except BrokenPipeError:
                    self.broken = True
                except OSError as e:
                    self.broken = True
                    log.error("events: cannot write (%s); events stop here", e)
                return
            self._pending.append(line.encode("utf-8"))
            if len(self._pending) > self.max_pending:
                self._pending.popleft()
                self.stats["lost"] += 1
            self._drain(force=False)

    def _drain(self, force: bool) -> None:
        """Write queued lines in order (lock held); on failure keep them and retry after a back-off."""
        assert self._fd is not None
        if not force and time.monotonic() < self._retry_at:
            self.stats["pending"] = len(self._pending)
            return
        was_failing = self.stats["error"] is not None
        while self._pending:
            try:
                self._write_whole(self._pending[0])
            except OSError as e:
                self.stats["write_errors"] += 1
                self._retry_at = time.monotonic() + self._delay
                if not was_failing:
                    log.error("events: cannot write %s (%s); classifying goes on, lines are kept (up to %d) "
                              "and writing is retried", self.path, e.strerror or e, self.max_pending)
                self.stats["error"] = f"{e.strerror or e} (errno {e.errno})"
                self._delay = min(self._delay * 2, self.retry[1])
                break
            self._pending.popleft()
            self.stats["written"] += 1
        else:
            self._delay = self.retry[0]
            if was_failing:
                log.warning("events: %s is writable again; the kept lines were written", self.path)
                self.stats["error"] = None
        self.stats["pending"] = len(self._pending)

    def _write_whole(self, data: bytes) -> None:
        """Write one line or nothing: a line cut short by an error is truncated away again."""
        assert self._fd is not None
        start = os.fstat(self._fd).st_size if self._regular else None
        done = 0
        try:
            while done < len(data):
                done += os.write(self._fd, data[done:])
        except OSError:
            if done and start is not None:
                with contextlib.suppress(OSError):
                    os.ftruncate(self._fd, start)
            raise

    def close(self) -> None:
        """Write what is still queued (one last try), sync and close; what cannot be written is `lost`."""
        with self._lock:
            if self._fd is not None:
                if self._pending:
                    self._drain(force=True)
                self.stats["lost"] += len(self._pending)
                self._pending.clear()
                self.stats["pending"] = 0
                try:
                    os.fsync(self._fd)
                except OSError:
                    pass
                os.close(self._fd)
                self._fd = None


def check_command(command: str) -> list[str]:
    """The --on-change command's words, once its program is known to exist and be executable (checked before
    the run, not at every change)."""
    try:
        argv = shlex.split(command)
    except ValueError as e:
        raise UsageError(f"--on-change {command!r}: cannot be split into words ({e}); check the quotes") from None
    if not argv:
        raise UsageError("--on-change: empty command")
    prog = argv[0]
    if os.sep not in prog:
        if shutil.which(prog) is None:
            raise UsageError(f"--on-change {command!r}: {prog!r} is not a program on PATH; give its full path")
    elif not os.path.isfile(prog):
        raise UsageError(f"--on-change {command!r}: {prog} {'is a folder' if os.path.isdir(prog) else 'does not exist'}"
                         "; give the path of an executable file")
    elif not os.access(prog, os.X_OK):
        raise UsageError(f"--on-change {command!r}: {prog} is not executable; `chmod +x {prog}`")
    return argv


class OnChange:
    """Run `command` (split like a shell would, no shell) on each label change, without blocking."""

    def __init__(self, command: str, max_running: int = 4):
        self.argv = check_command(command)
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
