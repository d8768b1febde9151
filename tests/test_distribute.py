"""`edgeclf train --strategy ...` on tf.distribute, on CPU: MirroredStrategy over two logical CPU devices,
MultiWorkerMirroredStrategy as two processes on loopback ports, and TF_CONFIG that cannot work.

Strategies that need a fresh TensorFlow (logical devices, multi-worker) run in subprocesses, each bounded
by a timeout and killed on the way out.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Sequence

import pytest
from typer.testing import CliRunner

from edgeclf.cli import app
from edgeclf.errors import UsageError
from edgeclf.rundir import RunDir
from edgeclf.train.distribute import InputPlan, read_tf_config, worker_role

from .conftest import write_color_folders

runner = CliRunner()
TIMEOUT = 240  # seconds for one training process; generous for 2 shared cores

# Splits the one CPU into N logical devices before TensorFlow starts, then runs the CLI: what a machine
# with N GPUs looks like to MirroredStrategy.
LOGICAL_CPUS = """
import sys
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * int(sys.argv[1]))
from edgeclf.cli import main
sys.argv = ["edgeclf", *sys.argv[2:]]
main()
"""


# Two TensorFlow workers share this machine's cores with whatever else runs: each is held to one thread per pool
# (edgeclf.train.threads honours these), so that a busy machine cannot make a worker's thread creation fail
# ("LLVM ERROR: pthread_create failed: Resource temporarily unavailable" once failed the suite under load).
WORKER_THREADS = {"TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1", "OMP_NUM_THREADS": "1"}


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    return {**WORKER_THREADS, **env, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONUNBUFFERED": "1", **extra}


def _run_all(cmds: Sequence[tuple[list[str], dict[str, str]]], timeout: float = TIMEOUT) -> list[tuple[int, str]]:
    """Start every command at once; (exit code, stdout+stderr) of each. Kills them all on timeout."""
    procs = [subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for cmd, env in cmds]
    try:
        deadline = time.monotonic() + timeout
        outs = [p.communicate(timeout=max(1.0, deadline - time.monotonic()))[0] for p in procs]
        return [(p.returncode, out) for p, out in zip(procs, outs)]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait(10)


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _tf_configs(n: int) -> list[str]:
    workers = [f"127.0.0.1:{p}" for p in _free_ports(n)]
    return [json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": i}}) for i in range(n)]


def _edgeclf(*args: str) -> list[str]:
    return [sys.executable, "-m", "edgeclf", *args]


@pytest.fixture(scope="module")
def colors(tmp_path_factory) -> Path:
    return write_color_folders(tmp_path_factory.mktemp("colors"), n_per_class=16, size=40)


# --- mirrored over two logical CPU devices ------------------------------------------------------------


@pytest.mark.slow
def test_mirrored_on_two_cpu_devices_matches_one_device(colors: Path, tmp_path: Path) -> None:
    """Same data, split, seed and global batch (8 = 8 x 1 replica = 4 x 2 replicas): held-out accuracy agrees."""
    common = ["train", "--arch", "edge", str(colors), "--size", "32", "--epochs", "4", "--no-augment", "--seed", "5"]
    single, mirrored = tmp_path / "single", tmp_path / "mirrored"
    (rc1, out1), (rc2, out2) = _run_all([
        ([sys.executable, "-c", LOGICAL_CPUS, "1", *common, "--out", str(single), "--strategy", "default",
          "--batch-size", "8"], _env()),
        ([sys.executable, "-c", LOGICAL_CPUS, "2", *common, "--out", str(mirrored), "--strategy", "mirrored",
          "--batch-size", "4"], _env()),
    ])
    assert rc1 == 0, out1[-3000:]
    assert rc2 == 0, out2[-3000:]
    assert "MirroredStrategy over 2 device(s)" in out2 and "2 replica(s) in sync" in out2, out2[-3000:]
    assert "global batch 8 = 4 per replica x 2 replica(s)" in out2
    assert "strategy: default (one device)" in out1
    m1, m2 = (json.loads((d / "metrics.json").read_text())["sizes"]["32"] for d in (single, mirrored))
    assert RunDir(single).read_split() == RunDir(mirrored).read_split()  # the same held-out images
    n_val = len(RunDir(single).read_split().val)
    # Colours are easy: both far above chance; and no further apart than two held-out images (noise).
    assert m1["accuracy"] >= 0.8 and m2["accuracy"] >= 0.8, (m1["accuracy"], m2["accuracy"])
    assert abs(m1["accuracy"] - m2["accuracy"]) <= 2 / n_val + 1e-9, (m1["accuracy"], m2["accuracy"])
    # The mirrored run's per-epoch validation (split over both replicas) saw what one device sees.
    rows = list(csv.DictReader((mirrored / "history-32.csv").open()))
    assert len(rows) == 4 and all(0.0 <= float(r["val_accuracy"]) <= 1.0 for r in rows)
    assert RunDir(mirrored).read_info().models[32].file == "models/32.keras"


# --- two workers on loopback ---------------------------------------------------------------------------


def _two_workers(args: list[str], tmp_path: Path, tag: str) -> tuple[list[tuple[int, str]], Path]:
    """Run `edgeclf train args` as worker 0 (chief) and worker 1; worker 1's temp dir is returned."""
    worker_tmp = tmp_path / f"worker-tmp-{tag}"
    worker_tmp.mkdir()
    configs = _tf_configs(2)
    results = _run_all([(_edgeclf(*args), _env(TF_CONFIG=configs[0])),
                        (_edgeclf(*args), _env(TF_CONFIG=configs[1], TMPDIR=str(worker_tmp)))])
    return results, worker_tmp


@pytest.mark.slow
def test_two_workers_train_an_epoch_and_only_the_chief_writes(colors: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = ["train", "--arch", "edge", str(colors), "--out", str(out), "--strategy", "multi-worker", "--size", "32", "--epochs", "1",
            "--batch-size", "4", "--no-augment"]
    [(rc0, out0), (rc1, out1)], worker_tmp = _two_workers(args, tmp_path, "a")
    assert rc0 == 0, out0[-3000:]
    assert rc1 == 0, out1[-3000:]
    for log in (out0, out1):
        assert "2 worker(s), 2 replica(s) in sync" in log and "global batch 8 = 4 per replica x 2" in log
        assert "auto-sharded by DATA over 2 workers" in log
    # Both were handed the same --out: the chief made it; worker 1 wrote a scratch copy in its TMPDIR.
    assert "worker 1 of 2: the chief writes the run directory" in out1 and str(worker_tmp) in out1
    assert "worker 1 of 2: trained with the chief" in out1 and f"run: {out}" in out0
    assert list(worker_tmp.iterdir()) == []  # the scratch copy is gone
    info = RunDir(out).read_info()
    assert info.labels == ("blue", "red") and sorted(info.models) == [32]
    rows = list(csv.DictReader((out / "history-32.csv").open()))
    assert [int(r["epoch"]) for r in rows] == [1]
    # Every worker saw the same averaged logs: the chief's epoch line is the worker's.
    line = [ln for ln in out0.splitlines() if "epoch 1/1" in ln][0].split("|")[:2]
    assert line == [ln for ln in out1.splitlines() if "epoch 1/1" in ln][0].split("|")[:2]
    metrics = json.loads((out / "metrics.json").read_text())["sizes"]["32"]
    assert metrics["accuracy"] >= 0.75  # one epoch of colours, two workers: well above chance


def _read_state(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return None


@pytest.mark.slow
def test_two_workers_killed_mid_run_resume_from_the_chiefs_backup(colors: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    epochs = 4
    args = ["train", "--arch", "edge", str(colors), "--out", str(out), "--strategy", "multi-worker", "--size", "32", "--epochs",
            str(epochs), "--batch-size", "4", "--patience", "50", "--no-augment", "--backup-every", "0"]
    configs = _tf_configs(2)
    killed_tmp = tmp_path / "worker-tmp-killed"
    killed_tmp.mkdir()
    logs = [(tmp_path / f"worker-{i}.log").open("w+") for i in range(2)]  # each worker's own words, for failures
    procs = [subprocess.Popen(_edgeclf(*args), env=_env(TF_CONFIG=configs[0], TMPDIR=str(killed_tmp)), stdout=subprocess.DEVNULL,
                              stderr=logs[0], text=True),
             subprocess.Popen(_edgeclf(*args), env=_env(TF_CONFIG=configs[1], TMPDIR=str(killed_tmp)),
                              stdout=subprocess.DEVNULL, stderr=logs[1], text=True)]

    def said() -> str:
        return "\n".join(f"worker {i} (exit {p.poll()}): {(tmp_path / f'worker-{i}.log').read_text()[-1500:]}"
                          for i, p in enumerate(procs))

    state_file = out / "state" / "32" / "state.json"
    try:
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline and all(p.poll() is None for p in procs):
            st = _read_state(state_file)
            if st and st["epoch"] >= 1:
                break
            time.sleep(0.05)
        assert all(p.poll() is None for p in procs), said()
        for p in procs:
            p.send_signal(signal.SIGKILL)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.wait(30)
    for f in logs:
        f.close()
    before = _read_state(state_file)
    assert before and 1 <= before["epoch"] < epochs and not (out / "run.json").exists(), \
        f"finished before the kill; {said()}"

    [(rc0, out0), (rc1, out1)], worker_tmp = _two_workers(["train", "--resume", str(out)], tmp_path, "b")
    assert rc0 == 0, out0[-3000:]
    assert rc1 == 0, out1[-3000:]
    for log in (out0, out1):  # both restored the chief's backup
        assert f"resuming after epoch {before['epoch']}" in log, log[-3000:]
    rows = list(csv.DictReader((out / "history-32.csv").open()))
    assert [int(r["epoch"]) for r in rows] == list(range(1, epochs + 1))
    assert [dict(r) for r in rows[:before["epoch"]]] == [
        {k: str(v) for k, v in h.items()} for h in before["history"]]  # the epochs before the kill are kept
    assert (out / "run.json").exists() and not list(out.rglob("backup-*.keras"))
    assert list(worker_tmp.iterdir()) == []


# --- TF_CONFIG that cannot work --------------------------------------------------------------------------


@pytest.mark.parametrize("tf_config,expect", [
    (None, "TF_CONFIG is not set"),
    ("{cluster: 1}", "TF_CONFIG is not valid JSON"),
    ('{"cluster": {"worker": ["127.0.0.1:1234"]}}', 'needs a "cluster" object and a "task" object'),
    ('{"cluster": {"worker": ["localhost"]}, "task": {"type": "worker", "index": 0}}',
     'cluster.worker must be a list of "host:port" strings'),
    ('{"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 2}}',
     "task.index 2 is not an index into cluster.worker (0..1)"),
    ('{"cluster": {"worker": ["a:1"], "ps": ["b:2"]}, "task": {"type": "worker", "index": 0}}',
     "names job(s) ['ps']"),
    ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "evaluator", "index": 0}}', 'task.type is "evaluator"'),
])
def test_bad_tf_config_is_one_clear_line(colors: Path, tmp_path: Path, tf_config: str | None, expect: str,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TF_CONFIG", raising=False)
    env = {"TF_CONFIG": tf_config} if tf_config is not None else {}
    r = runner.invoke(app, ["train", "--arch", "edge", str(colors), "--out", str(tmp_path / "run"), "--strategy", "multi-worker"],
                      env=env)
    errors = [ln for ln in r.output.splitlines() if ln.startswith("error:")]
    assert r.exit_code == 2 and len(errors) == 1, r.output
    assert expect in errors[0] and "--strategy multi-worker expects" in errors[0] and '"index": 0' in errors[0]
    assert "Traceback" not in r.output
    assert not (tmp_path / "run").exists()  # refused before any work


def test_tf_config_roles_follow_tensorflow() -> None:
    """The chief is the "chief" task, else worker 0; ranks count the chief first."""
    two = '{"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": %d}}'
    assert worker_role("multi-worker", {"TF_CONFIG": two % 0}).chief
    r1 = worker_role("multi-worker", {"TF_CONFIG": two % 1})
    assert (r1.chief, r1.rank, r1.workers, r1.describe()) == (False, 1, 2, "worker 1 of 2")
    with_chief = '{"cluster": {"chief": ["c:1"], "worker": ["a:1"]}, "task": {"type": "%s", "index": 0}}'
    c = read_tf_config({"TF_CONFIG": with_chief % "chief"})
    w = read_tf_config({"TF_CONFIG": with_chief % "worker"})
    assert (c.chief, c.rank, c.address) == (True, 0, "c:1") and (w.chief, w.rank, w.address) == (False, 1, "a:1")
    assert worker_role("mirrored", {}).chief and worker_role("default", {"TF_CONFIG": "garbage"}).chief
    with pytest.raises(UsageError, match="lists the same host:port twice"):
        read_tf_config({"TF_CONFIG": '{"cluster": {"worker": ["a:1", "a:1"]}, "task": {"type": "worker"}}'})


def test_worker_scratch_is_removed_even_on_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)  # re-read TMPDIR
    role = worker_role("multi-worker", {"TF_CONFIG": '{"cluster": {"worker": ["a:1", "b:2"]}, '
                                                     '"task": {"type": "worker", "index": 1}}'})
    with pytest.raises(RuntimeError):
        with role.scratch() as scratch:
            assert scratch is not None and scratch.parent == tmp_path
            (scratch / "run").mkdir()
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []
    with worker_role("default").scratch() as none:
        assert none is None


def test_input_plan_global_batch_steps_and_validation_slices() -> None:
    one = InputPlan(replicas=1, workers=1, per_replica_batch=8, n_train=19, n_val=7)
    assert (one.global_batch, one.steps) == (8, 3)  # one device: the last partial batch is kept
    two = InputPlan(replicas=2, workers=1, per_replica_batch=4, n_train=19, n_val=7)
    assert (two.global_batch, two.steps) == (8, 2)  # whole global batches only: no replica gets nothing
    assert two.eval_batches == (6, 1)  # 6 of 7 held-out images, 3 per replica
    big = InputPlan(replicas=4, workers=2, per_replica_batch=32, n_train=1000, n_val=130)
    size, n = big.eval_batches
    assert size % 4 == 0 and n == 3 and 130 - 3 * 4 < size * n <= 130
    assert "auto-sharded by DATA over 2 workers" in big.describe() and "global batch 128" in big.describe()


def test_too_small_data_for_the_replicas_is_refused() -> None:
    import tensorflow as tf

    from edgeclf.train.distribute import input_plan

    class Fake:  # what input_plan reads from a strategy with 4 replicas on one machine
        num_replicas_in_sync = 4

    with pytest.raises(UsageError, match="global batch of 128, more than the 100 training images"):
        input_plan(Fake(), 32, 100, 20)
    with pytest.raises(UsageError, match="3 held-out image"):
        input_plan(Fake(), 4, 100, 3)
    assert input_plan(tf.distribute.get_strategy(), 32, 10, 1).steps == 1
