"""TensorFlow's thread pools sized to the cores this process may use, and the line that says so.

intra-op (inside one op: convolutions, matmuls, oneDNN's pool) = the usable cores; inter-op (independent ops
run side by side) = 2 at most: a training step is mostly one chain of ops, and more inter-op threads only
compete with intra-op ones on a small machine. tf.data sizes its own pool to the cores (AUTOTUNE).
`OMP_NUM_THREADS`, `TF_NUM_INTRAOP_THREADS` / `TF_NUM_INTEROP_THREADS` set by the user win.
"""

from __future__ import annotations

import os

INTER_OP_MAX = 2


def _env_int(name: str) -> int | None:
    try:
        v = int(os.environ.get(name, ""))
    except ValueError:
        return None
    return v if v > 0 else None


def configure_threads() -> str:
    """Set the pools (before TensorFlow runs anything) and return the line that reports them."""
    import tensorflow as tf

    from edgeclf.cores import usable_cores

    cores = usable_cores()
    intra = _env_int("TF_NUM_INTRAOP_THREADS") or _env_int("OMP_NUM_THREADS") or cores
    inter = _env_int("TF_NUM_INTEROP_THREADS") or min(INTER_OP_MAX, cores)
    note = ""
    try:
        tf.config.threading.set_intra_op_parallelism_threads(intra)
        tf.config.threading.set_inter_op_parallelism_threads(inter)
    except RuntimeError:  # TensorFlow already started (e.g. a second run in one process): its pools stay
        intra = tf.config.threading.get_intra_op_parallelism_threads() or cores
        inter = tf.config.threading.get_inter_op_parallelism_threads() or cores
        note = " (already set in this process)"
    onednn = os.environ.get("TF_ENABLE_ONEDNN_OPTS", "1") != "0"
    return (f"threads: {intra} intra-op, {inter} inter-op on {cores} usable cores; tf.data autotuned; "
            f"oneDNN {'on' if onednn else 'off (TF_ENABLE_ONEDNN_OPTS=0)'}{note}")
