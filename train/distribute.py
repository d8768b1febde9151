"""Which tf.distribute strategy trains the model, and what that means for the input and the run directory.

    worker_role(name)         this process's place: the chief writes the run directory, others scratch
    resolve_strategy(name)    the tf.distribute.Strategy (create it before TensorFlow runs anything else)
    input_plan(strategy, ...) global batch, steps per epoch, sharding of the datasets
    fitting(strategy, model)  a context in which Keras' fit works on that strategy

edgeclf does not distribute anything itself: Keras' `model.fit` runs on the strategy, the model, optimizer
and metrics are built inside `strategy.scope()` (train/fit.py) and tf.data shards the input.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping

from edgeclf.errors import RunError, UsageError
from edgeclf.train.tfdata import steps_per_epoch

log = logging.getLogger(__name__)

STRATEGIES = ("auto", "default", "mirrored", "multi-worker")
TF_CONFIG_EXAMPLE = ('TF_CONFIG=\'{"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
                     '"task": {"type": "worker", "index": 0}}\' (index 1 on the second machine)')


@dataclass(frozen=True)
class Cluster:
    """The parts of TF_CONFIG that edgeclf relies on."""

    workers: tuple[str, ...]  # host:port of every training task, the "chief" task (if any) first
    task_type: str  # "chief" or "worker"
    index: int
    rank: int  # this task's position in `workers`
    chief: bool  # the "chief" task, or worker 0 when there is none (TensorFlow's rule)

    @property
    def address(self) -> str:
        return self.workers[self.rank]


def _bad(why: str) -> UsageError:
    return UsageError(f"TF_CONFIG {why}; --strategy multi-worker expects JSON naming the cluster and this "
                      f"task on every machine, e.g. {TF_CONFIG_EXAMPLE}")


def read_tf_config(environ: Mapping[str, str] | None = None) -> Cluster:
    """Parse and check TF_CONFIG the way MultiWorkerMirroredStrategy will read it; one clear error if not."""
    raw = (os.environ if environ is None else environ).get("TF_CONFIG", "")
    if not raw.strip():
        raise _bad("is not set")
    try:
        conf = json.loads(raw)
    except ValueError as e:
        raise _bad(f"is not valid JSON ({e})") from None
    cluster = conf.get("cluster") if isinstance(conf, dict) else None
    task = conf.get("task") if isinstance(conf, dict) else None
    if not isinstance(cluster, dict) or not isinstance(task, dict):
        raise _bad("needs a \"cluster\" object and a \"task\" object")
    jobs: dict[str, list[str]] = {}
    for job in ("chief", "worker"):
        hosts = cluster.get(job, [])
        if not isinstance(hosts, list) or not all(isinstance(h, str) and _host_port(h) for h in hosts):
            raise _bad(f"cluster.{job} must be a list of \"host:port\" strings, got {json.dumps(hosts)}")
        jobs[job] = hosts
    other = sorted(set(cluster) - {"chief", "worker", "evaluator"})
    if other:
        raise _bad(f"names job(s) {other} that MultiWorkerMirroredStrategy does not use (only chief and worker)")
    if len(jobs["chief"]) > 1:
        raise _bad(f"lists {len(jobs['chief'])} chiefs; at most one")
    if not jobs["worker"] and not jobs["chief"]:
        raise _bad("lists no workers in cluster.worker")
    task_type, index = task.get("type"), task.get("index", 0)
    if task_type not in ("chief", "worker"):
        raise _bad(f"task.type is {json.dumps(task_type)}; this process must be a \"worker\" (or the \"chief\")")
    if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < len(jobs[task_type]):
        raise _bad(f"task.index {json.dumps(index)} is not an index into cluster.{task_type} "
                   f"(0..{len(jobs[task_type]) - 1})")
    chief = task_type == "chief" or (not jobs["chief"] and index == 0)
    workers = tuple(jobs["chief"] + jobs["worker"])
    if len(set(workers)) != len(workers):
        raise _bad(f"lists the same host:port twice ({', '.join(workers)})")
    rank = index if task_type == "chief" else len(jobs["chief"]) + index
    return Cluster(workers, task_type, index, rank, chief)


def _host_port(s: str) -> bool:
    host, sep, port = s.rpartition(":")
    return bool(host and sep and port.isdigit() and 0 < int(port) < 65536)


@dataclass(frozen=True)
class Role:
    """Where this process writes: the chief (or a single process) the run directory, other workers scratch."""

    chief: bool = True
    rank: int = 0
    workers: int = 1

    def describe(self) -> str:
        return f"worker {self.rank} of {self.workers}" + (" (chief)" if self.chief else "")

    @contextlib.contextmanager
    def scratch(self) -> Iterator[Path | None]:
        """None on the chief; on other workers a temp dir for their copy of the run, removed afterwards."""
        if self.chief:
            yield None
            return
        tmp = Path(tempfile.mkdtemp(prefix=f"edgeclf-worker{self.rank}-"))
        log.info("%s: the chief writes the run directory; this worker writes to %s (removed at the end)",
                 self.describe(), tmp)
        try:
            yield tmp
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


def worker_role(name: str, environ: Mapping[str, str] | None = None) -> Role:
    """This process's role under `--strategy name`; checks TF_CONFIG for multi-worker before any work."""
    if name != "multi-worker":
        return Role()
    c = read_tf_config(environ)
    return Role(c.chief, c.rank, len(c.workers))


def _devices() -> list[str]:
    """What MirroredStrategy spreads over: every GPU, else every (logical) CPU device."""
    import tensorflow as tf

    gpus = [d.name for d in tf.config.list_logical_devices("GPU")]
    return gpus or [d.name for d in tf.config.list_logical_devices("CPU")]


def resolve_strategy(name: str) -> Any:
    """The tf.distribute.Strategy for `--strategy name`.

    auto: MirroredStrategy when several GPUs are visible, else the default strategy (one device).
    default: tf.distribute.get_strategy(). mirrored: MirroredStrategy over every visible GPU, or every
    logical CPU device when there is no GPU. multi-worker: MultiWorkerMirroredStrategy from TF_CONFIG;
    it must be created before TensorFlow runs any op in this process.
    """
    if name not in STRATEGIES:
        raise UsageError(f"--strategy {name!r} is not supported; expected one of {', '.join(STRATEGIES)}")
    if name == "multi-worker":
        cluster = read_tf_config()
    import tensorflow as tf

    if name == "auto":
        if len(tf.config.list_physical_devices("GPU")) > 1:
            name = "mirrored"
        else:
            if os.environ.get("TF_CONFIG"):
                log.info("TF_CONFIG is set but --strategy auto trains on this machine alone; "
                         "use --strategy multi-worker to train across its workers")
            log.info("strategy: default (one device)")
            return tf.distribute.get_strategy()
    if name == "default":
        log.info("strategy: default (one device)")
        return tf.distribute.get_strategy()
    if name == "mirrored":
        devices = _devices()
        strategy = tf.distribute.MirroredStrategy(devices)
        log.info("strategy: MirroredStrategy over %d device(s) (%s), %d replica(s) in sync", len(devices),
                 ", ".join(devices), strategy.num_replicas_in_sync)
        return strategy
    log.info("strategy: MultiWorkerMirroredStrategy, %s %s:%d at %s; waiting for all %d workers",
             "chief" if cluster.chief else "worker", cluster.task_type, cluster.index, cluster.address,
             len(cluster.workers))
    try:
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
    except RuntimeError as e:
        if "startup" in str(e):
            raise RunError("--strategy multi-worker: TensorFlow was already running in this process; "
                           "the strategy must be created first (start a fresh process)") from None
        raise
    log.info("strategy: %d worker(s), %d replica(s) in sync", len(cluster.workers), strategy.num_replicas_in_sync)
    return strategy


def _workers(strategy: Any) -> int:
    """Machines taking part: all replicas over this worker's own replicas (1 for the default strategy)."""
    import tensorflow as tf

    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return 1
    return max(1, int(strategy.num_replicas_in_sync) // max(1, len(strategy.extended.worker_devices)))


@dataclass(frozen=True)
class InputPlan:
    """How the training data meets the strategy.

    The global batch is `per_replica_batch x replicas`: each step every replica gets `per_replica_batch`
    images. With more than one replica only whole global batches are used (each epoch's last, partial batch
    is dropped), so no replica ever gets an empty slice (BatchNorm statistics of nothing are NaN). Under
    several workers tf.data auto-shards by DATA: each worker reads the file list and keeps its own slice
    of every global batch (FILE sharding needs one record file per shard, which this pipeline does not use).
    """

    replicas: int
    workers: int
    per_replica_batch: int
    n_train: int
    n_val: int
    eval_batch: int = 64

    @property
    def global_batch(self) -> int:
        return self.per_replica_batch * self.replicas

    @property
    def steps(self) -> int:
        if self.replicas == 1:
            return steps_per_epoch(self.n_train, self.global_batch)
        return self.n_train // self.global_batch

    def describe(self) -> str:
        s = (f"global batch {self.global_batch} = {self.per_replica_batch} per replica x {self.replicas} "
             f"replica(s), {self.steps} steps per epoch")
        if self.replicas > 1:
            dropped = self.n_train - self.steps * self.global_batch
            s += f" ({dropped} image(s) of each shuffled epoch left out: whole global batches only)" if dropped else ""
            size, n = self.eval_batches
            s += f"; per-epoch validation on {size * n} of {self.n_val} held-out images ({n} x {size})"
        if self.workers > 1:
            s += (f"; input auto-sharded by DATA over {self.workers} workers (each reads the file list and keeps "
                  "its slice of every batch; FILE sharding needs record files)")
        return s

    def _options(self, ds: Any) -> Any:
        import tensorflow as tf

        if self.workers == 1:
            return ds  # nothing to shard: one input pipeline feeds every local replica
        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
        return ds.with_options(options)

    def train(self, ds: Any) -> Any:
        """The training dataset (batched at the global batch) as the strategy should see it."""
        import tensorflow as tf

        if self.replicas > 1:
            g = self.global_batch
            ds = ds.filter(lambda x, y: tf.shape(x)[0] == g).map(
                lambda x, y: (tf.ensure_shape(x, [g, *x.shape[1:]]), tf.ensure_shape(y, [g, *y.shape[1:]])))
        return self._options(ds)

    @property
    def eval_batches(self) -> tuple[int, int]:
        """(batch size, batches) of fit's per-epoch validation pass when it is split over replicas: every
        batch a whole multiple of the replicas (Keras averages the first batch's per-replica slices element-wise,
        and an empty slice breaks BatchNorm), as many batches as EVAL-sized batching would give."""
        n = -(-self.n_val // self.eval_batch)
        return self.replicas * (self.n_val // (n * self.replicas)), n

    def eval(self, ds: Any) -> Any:
        """fit's validation data (batched at any size), sharded like the training data; with several replicas
        re-cut into `eval_batches` (up to batches x replicas - 1 images left out of this per-epoch pass;
        the run's final held-out metrics are computed on every image on one device)."""
        import tensorflow as tf

        if self.replicas > 1:
            size, n = self.eval_batches
            # A known length matters: with an unknown one Keras runs one step past the end, and tf.distribute
            # feeds a replica its last slice again (measured: a replica counted 6 images of a 3-image slice).
            ds = ds.unbatch().take(size * n).batch(size, drop_remainder=True)
            ds = ds.apply(tf.data.experimental.assert_cardinality(n))
        return self._options(ds)


@contextlib.contextmanager
def fitting(strategy: Any, model: Any) -> Iterator[None]:
    """While inside, `model.fit` / `model.evaluate` work on `strategy` (the model built in its scope).

    MirroredStrategy and the default strategy need nothing. MultiWorkerMirroredStrategy needs two fixes to
    Keras 3 (keras-team/keras#20585, open): how it learns input shapes and how it averages step logs; they
    live in `edgeclf.train.keras_patches`, applied only for the Keras versions known to need them.
    BatchNorm statistics need no syncing here: the trainer's precise-BN callback recomputes them on every
    worker from the same images before each validation, so every replica holds the same values.
    """
    import tensorflow as tf

    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        yield
        return
    from edgeclf.train.keras_patches import multi_worker_fit

    with multi_worker_fit(strategy, model):
        yield


def input_plan(strategy: Any, per_replica_batch: int, n_train: int, n_val: int, eval_batch: int = 64) -> InputPlan:
    """The InputPlan for this data; refuses data too small to give every replica a slice."""
    plan = InputPlan(int(strategy.num_replicas_in_sync), _workers(strategy), per_replica_batch, n_train, n_val,
                     eval_batch)
    if plan.replicas > 1 and plan.steps < 1:
        raise UsageError(f"--batch-size {per_replica_batch} x {plan.replicas} replicas is a global batch of "
                         f"{plan.global_batch}, more than the {n_train} training images; lower --batch-size")
    if n_val < plan.replicas:
        raise UsageError(f"{n_val} held-out image(s) cannot be spread over {plan.replicas} replicas; hold out more "
                         "images (--validation-split) or train with fewer replicas")
    return plan
