"""The model step alone: float32 against mixed bfloat16, with and without XLA, per net and input size.

What `edgeclf train --precision auto` and its XLA choice rest on (train/precision.py). Synthetic batches of 32
(the default --batch-size), `train_on_batch` on a compiled model (RMSprop, the training loss), op determinism on
as `edgeclf train` has it. For each net and size every case is built and traced first, then timed in rounds
A B C D A B C D ...: a busy machine slows neighbouring measurements alike. Figures: median images/s over the
rounds, the ratio to float32 in the same rounds, and the spread of the float32 rounds (max - min over median:
the noise). A pretrained net is timed in its head phase (backbone frozen: forward through the backbone only)
and fine-tuning its top 3 blocks.

Keras refuses XLA (`jit_compile=True` falls back to False with a warning) while TensorFlow op determinism is
on, which `edgeclf train` turns on for same-seed-same-metrics. So XLA is timed only with `--xla`, which
leaves determinism off for the whole process and times all four cases (float32, bfloat16, each with XLA).

    nice -n 10 .venv/bin/python benchmarks/train_step.py [--size 150 --size 300] [--arch edge ...] [--xla]
"""

from __future__ import annotations

import statistics
import sys
import time
from typing import Any

import _common as c

CASES = (("float32", False), ("bfloat16", False), ("float32", True), ("bfloat16", True))
BATCH = 32


def _case_name(precision: str, jit: bool) -> str:
    return precision + (" + XLA" if jit else "")


def _model(arch: str, size: int, precision: str, jit: bool, phase: str) -> Any:
    import keras

    from edgeclf.train import recipe
    from edgeclf.train.archs import build_model
    from edgeclf.train.backbones import BACKBONES
    from edgeclf.train.losses import loss_and_metric
    from edgeclf.train.precision import policy_name, training_model

    keras.utils.set_random_seed(1)
    pretrained = arch in BACKBONES
    with training_model(policy_name(precision)):
        model = build_model(arch, size, 2, weights=None, frozen_bn=pretrained)
    if pretrained:
        recipe.apply(model, recipe.Phase(phase, 0, 1, 1e-3), BACKBONES[arch], 3)
    loss, metric = loss_and_metric(2, 0.1)
    model.compile(keras.optimizers.RMSprop(1e-3), loss=loss, metrics=[metric], jit_compile=jit)
    return model


def measure(arch: str, size: int, phase: str, rounds: int, steps: int, cases: Any) -> dict[str, Any]:
    import numpy as np

    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (BATCH, size, size, 3)).astype("float32")
    y = rng.integers(0, 2, (BATCH, 1)).astype("float32")
    models: dict[str, Any] = {}
    for precision, jit in cases:
        name = _case_name(precision, jit)
        try:
            m = _model(arch, size, precision, jit, phase)
            for _ in range(2):  # trace, compile, first allocations
                m.train_on_batch(x, y)
            models[name] = m
        except Exception as e:  # an op XLA or bf16 cannot take: reported, not fatal
            print(f"  {name}: failed ({type(e).__name__}: {str(e).splitlines()[0][:120]})", flush=True)
    rates: dict[str, list[float]] = {k: [] for k in models}
    for _ in range(rounds):
        for name, m in models.items():
            t0 = time.perf_counter()
            for _ in range(steps):
                m.train_on_batch(x, y)
            rates[name].append(steps * BATCH / (time.perf_counter() - t0))
    return rates


def main(argv: list[str] | None = None) -> int:
    p = c.parser(__doc__)
    p.add_argument("--size", type=int, action="append", default=None, help="input size(s) (default 150 and 300)")
    p.add_argument("--arch", action="append", default=None,
                   help="net(s) (default: seed, edge, efficientnet-lite0)")
    p.add_argument("--rounds", type=int, default=3, help="timed rounds per case (default 3)")
    p.add_argument("--steps", type=int, default=3, help="training steps per round (default 3)")
    p.add_argument("--xla", action="store_true", help="also time XLA (op determinism off for the whole run)")
    a = p.parse_args(argv)
    c.quiet_tensorflow()
    import tensorflow as tf

    from edgeclf.train.backbones import BACKBONES
    from edgeclf.train.precision import cpu_bf16
    from edgeclf.train.threads import configure_threads

    print(configure_threads(), flush=True)
    if not a.xla:
        tf.config.experimental.enable_op_determinism()  # as edgeclf train; Keras then refuses XLA
    cases = CASES if a.xla else CASES[:2]
    m = c.print_machine(f"training step, batch {BATCH}, op determinism {'off' if a.xla else 'on'}, "
                        f"CPU bf16 instructions: {cpu_bf16() or 'none'}")
    rows, results = [], {}
    for size in a.size or [150, 300]:
        for arch in a.arch or ["seed", "edge", "efficientnet-lite0"]:
            for phase in (("head", "fine-tune") if arch in BACKBONES else ("all",)):
                label = f"{arch} ({phase})" if phase != "all" else arch
                print(f"@{size} {label} ...", flush=True)
                rates = measure(arch, size, phase, a.rounds, a.steps, cases)
                base = rates.get("float32")
                if not base:
                    continue
                b = statistics.median(base)
                noise = (max(base) - min(base)) / b
                for name, r in rates.items():
                    med = statistics.median(r)
                    ratio = statistics.median([x / y for x, y in zip(r, base)])  # per round: same conditions
                    results[f"{size} {label} {name}"] = {"img_s": r, "median": med, "ratio": ratio}
                    rows.append([f"@{size}", label, name, med, f"{ratio:.2f}×", f"±{100 * noise / 2:.0f} %"])
    c.table(["size", "net", "case", "img/s", "vs float32 (same rounds)", "float32 noise"], rows,
            title=f"training step, {a.rounds} interleaved rounds of {a.steps} steps")
    m = c.finish(m)
    c.save(a.json, {"machine": m, "batch": BATCH, "determinism": not a.xla, "results": results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
