"""Run `bench_measure.measure` in another Python (e.g. a tflite-runtime 2.14 venv) and stream the result.

Child: `PYTHON -m edgeclf.bench.worker RUNTIME < job.json` prints one JSON line per progress step
(`{"tick": ...}`) and a last line `{"rows": [...]}`; errors become `{"error": "..."}` and exit 1.
Parent: `run_elsewhere(python, runtime, job, tick)`. edgeclf must be installed in that Python
(`PYTHON -m pip install -e . --no-deps`).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from typing import Any

from edgeclf.bench.measure import Job, Tick
from edgeclf.child import module_argv
from edgeclf.errors import EdgeclfError, UsageError


def run_elsewhere(python: str, runtime: str, job: Job, tick: Tick = lambda _: None) -> tuple[str, list[dict[str, Any]]]:
    """(runtime version, rows) of `job` measured by `runtime` inside the interpreter `python`."""
    errfile = tempfile.TemporaryFile("w+")  # a file, not a pipe: a chatty runtime cannot block the child
    try:
        proc = subprocess.Popen(module_argv("edgeclf.bench.worker", runtime, python=python), stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=errfile, text=True)
    except OSError as e:
        raise UsageError(f"--tflite-python {python}: cannot run it ({e.strerror}); give the python of a venv "
                         "with tflite-runtime and edgeclf installed") from None
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(json.dumps(job.to_dict()))
    proc.stdin.close()
    result: dict[str, Any] = {}
    for line in proc.stdout:
        if not line.startswith("{"):
            continue
        msg = json.loads(line)
        if "tick" in msg:
            tick(msg["tick"])
        else:
            result = msg
    proc.wait()
    errfile.seek(0)
    err = errfile.read()
    errfile.close()
    if "error" in result:
        raise EdgeclfError(f"{runtime} in {python}: {result['error']}")
    if proc.returncode != 0 or "rows" not in result:
        last = (err.strip().splitlines() or ["no output"])[-1]
        if "No module named" in last and "edgeclf" in last:
            raise UsageError(f"{python}: edgeclf is not installed there; run `{python} -m pip install -e . --no-deps` "
                             "in this checkout")
        raise EdgeclfError(f"{runtime} in {python} failed (exit {proc.returncode}): {last}")
    return result["version"], result["rows"]


def _child(runtime: str) -> int:
    from edgeclf.bench.measure import measure
    from edgeclf.edge.runtime import find_runtime

    def tick(what: str) -> None:
        print(json.dumps({"tick": what}), flush=True)

    try:
        rt = find_runtime(runtime)
        job = Job.from_dict(json.loads(sys.stdin.read()))
        rows = measure(job, rt, tick)
    except EdgeclfError as e:
        print(json.dumps({"error": str(e)}), flush=True)
        return 1
    print(json.dumps({"version": rt.version, "rows": rows}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(_child(sys.argv[1]))
