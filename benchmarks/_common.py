"""Shared helpers for the benchmark scripts: the data set, a run to measure, the machine, tables, ratios.

Every script is run from the repository root with the project's venv, e.g.
`.venv/bin/python benchmarks/edge_frame_cost.py [--run RUN]`. Without --run the scripts use (and on first
use build, with the real `edgeclf train` and `edgeclf convert`) `runs/bench`, trained on the shared
horse-or-human set.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

REPO = Path(__file__).resolve().parents[1]
DEFAULT_RUN = REPO / "runs" / "bench"
SHARED = REPO.parent / "shared" / "datasets" / "horse-or-human" / "train"


def quiet_tensorflow() -> None:
    """Keep TensorFlow's C++ start-up chatter out of the figures (set before it is imported)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def parser(doc: str | None) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--json", type=Path, default=None, help="also write the figures to this JSON file")
    return p


def add_run_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--run", type=Path, default=None,
                   help=f"a run with bundles (default {DEFAULT_RUN.relative_to(REPO)}, trained and converted on "
                        "first use)")
    p.add_argument("--data", default=None, help="data folder when a run must be trained (default: $EDGECLF_DATA, "
                                                "../shared/datasets/horse-or-human/train, cache or download)")


def data_dir(data: str | None) -> Path:
    from edgeclf.datasets import resolve_data

    if not data and not os.environ.get("EDGECLF_DATA") and SHARED.is_dir():
        data = str(SHARED)
    return resolve_data(data)


def _edgeclf(*args: str) -> None:
    cmd = [sys.executable, "-m", "edgeclf", *args]
    print("$ edgeclf " + " ".join(args), flush=True)
    if subprocess.run(cmd).returncode != 0:
        raise SystemExit(f"`edgeclf {' '.join(args)}` failed; see above")


QUANTIZATIONS = ("float32", "float16", "dynamic", "int8")


def ensure_run(run: Path | None, data: str | None, quantize: Sequence[str] = QUANTIZATIONS) -> Path:
    """The run to measure: --run, else runs/bench (trained with `edgeclf train` defaults and converted to
    every quantization kind, gate or not, when missing)."""
    if run is not None:
        if not (run / "run.json").is_file():
            raise SystemExit(f"--run {run}: not a run directory (no run.json); expected runs/train-N")
        return run
    run = DEFAULT_RUN
    if not (run / "run.json").is_file():
        print(f"no run at {run}: training one with `edgeclf train` defaults (minutes)", flush=True)
        _edgeclf("train", str(data_dir(data)), "--out", str(run))
    have = {p.name for p in (run / "bundles").glob("*") if (p / "manifest.json").is_file()}
    want = [q for q in quantize if not any(name.endswith("-" + q) for name in have)]
    if want:
        _edgeclf("convert", str(run), "--allow-drop", *[a for q in want for a in ("--quantize", q)])
    return run


def bundles_of(run: Path) -> dict[str, Path]:
    """Bundle folders of a run by name (`150-int8`, ...)."""
    return {p.name: p for p in sorted((run / "bundles").glob("*")) if (p / "manifest.json").is_file()}


def held_out(run: Path, data: str | None = None, limit: int = 0) -> list[tuple[str, str]]:
    from edgeclf.bench.run import held_out as _held_out

    files, note = _held_out(run, Path(data) if data else None, limit)
    if note:
        raise SystemExit(note)
    return list(files)


def machine() -> dict[str, Any]:
    from edgeclf.bench.report import cpu_model, cpu_snapshot

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    return {"cpu": cpu_model(), "cores": os.cpu_count(), "load": round(load, 2) if load is not None else None,
            "python": sys.version.split()[0], "date": time.strftime("%Y-%m-%d %H:%M %Z"),
            "cpu_start": cpu_snapshot()}


def print_machine(title: str) -> dict[str, Any]:
    """The machine line at the start; `finish` says how busy other processes kept it meanwhile."""
    m = machine()
    print(f"== {title}\n{m['date']} · {m['cpu']} · {m['cores']} cores · Python {m['python']} · load average "
          f"{m['load']} at start", flush=True)
    return m


def finish(m: dict[str, Any]) -> dict[str, Any]:
    """Print and record the cores other processes used during the measurement (the noise)."""
    from edgeclf.bench.report import others_cores

    others = others_cores(m.get("cpu_start"))
    out = {k: v for k, v in m.items() if k != "cpu_start"}
    out["others_cores"] = others
    if others is not None:
        verdict = "busy: figures are pessimistic" if others > 0.25 else "quiet"
        print(f"other processes kept {others:.2f} of {m['cores']} cores busy during this run ({verdict})", flush=True)
    return out


def timed(fn: Callable[[], Any], n: int, warmup: int = 3) -> list[float]:
    """Wall times in ms of `n` calls of `fn` after `warmup` untimed ones."""
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(n):
        t0 = time.perf_counter_ns()
        fn()
        out.append((time.perf_counter_ns() - t0) / 1e6)
    return out


def median(xs: Iterable[float]) -> float:
    return float(statistics.median(list(xs)))


def pct(xs: Sequence[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(round(q / 100 * (len(s) - 1))))]


def goal(ok: bool) -> str:
    return "holds" if ok else "MISSED"


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]], title: str = "") -> str:
    """A plain-text (and markdown-compatible) table, printed and returned."""
    rows = [[_cell(c) for c in r] for r in rows]
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    line = lambda cells: "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths)) + " |"  # noqa: E731
    text = "\n".join([line(headers), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(line, rows)])
    print(("\n" + title + "\n" if title else "") + text, flush=True)
    return text


def _cell(v: Any) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        a = abs(v)
        return f"{v:.0f}" if a >= 100 else f"{v:.1f}" if a >= 10 else f"{v:.2f}" if a >= 0.1 or a == 0 else f"{v:.3f}"
    return str(v)


def save(path: Path | None, payload: dict[str, Any]) -> None:
    if path is not None:
        from edgeclf.atomic import write_json

        write_json(path, payload)
        print(f"wrote {path}")


class Broker:
    """A throw-away MQTT broker (Debian's mosquitto) on a free loopback port, for the camera --mqtt figures."""

    def __init__(self) -> None:
        import shutil
        import socket
        import tempfile

        exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        if not Path(exe).exists():
            raise SystemExit("the --mqtt figures need an MQTT broker: apt-get install mosquitto")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self._tmp = tempfile.TemporaryDirectory()
        conf = Path(self._tmp.name) / "mosquitto.conf"
        conf.write_text(f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
        self._proc = subprocess.Popen([exe, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline or self._proc.poll() is not None:
                    raise SystemExit("mosquitto did not start") from None
                time.sleep(0.05)

    def url(self, prefix: str = "edgeclf/bench") -> str:
        return f"mqtt://127.0.0.1:{self.port}/{prefix}"

    def close(self) -> None:
        self._proc.terminate()
        self._proc.wait(timeout=10)
        self._tmp.cleanup()
