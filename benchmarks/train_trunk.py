"""The frozen trunk's feature pass (`--feature-views`, train/featcache.py): TensorFlow, what `edgeclf train` runs,
against the same trunk converted to a TFLite float32 model on XNNPACK (1 and 2 threads), on its own and inside
the augmented tf.data pipeline a run feeds it.

The trunk is cut as a run cuts it (efficientnet-lite0 below its top --fine-tune-blocks blocks) and exported and
converted the way `edgeclf convert` does (batch 1, then the interpreter's input resized to the batch). "Alone": a
fixed batch of 32, wall and CPU time per image. "In the pipeline": `--views` augmented views of `--limit` images,
the trunk run on every batch as `featcache.compute` does; the first pass fills the cache and is not timed, then
rounds A B C A B C ...: ms per image, and each trunk's ratio to TensorFlow's in the same round. On 2 cores the
trunk's threads and tf.data's compete, so the two columns can disagree (docs/training.md#training-speed).

    .venv/bin/python benchmarks/train_trunk.py [--size 150 --size 300] [--limit 320] [--views 2] [--rounds 2]
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import _common as c
import numpy as np

BATCH = 32


def tflite_trunk(trunk: Any, size: int, threads: int) -> tuple[Callable[[Any], np.ndarray], float]:
    """`trunk` as a float32 TFLite model on this machine's interpreter: a batch forward and the seconds to convert."""
    from edgeclf.convert.export import export_saved_model, to_tflite
    from edgeclf.convert.quantize import QuantizationKind
    from edgeclf.edge.runtime import find_runtime

    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="edgeclf-trunk-") as tmp:
        data = to_tflite(export_saved_model(trunk, size, Path(tmp) / "saved_model"), QuantizationKind.for_float32())
    seconds = time.perf_counter() - t0
    it = find_runtime().interpreter_class(model_content=data, num_threads=threads)
    inp, out = it.get_input_details()[0]["index"], it.get_output_details()[0]["index"]
    it.resize_tensor_input(inp, [BATCH, size, size, 3])
    it.allocate_tensors()

    def forward(x: Any) -> np.ndarray:
        x = np.asarray(x, np.float32)
        n = len(x)
        if n < BATCH:  # the last batch of a view: padded, the padding's rows dropped
            x = np.concatenate([x, np.zeros((BATCH - n, *x.shape[1:]), np.float32)])
        it.set_tensor(inp, x)
        it.invoke()
        return it.get_tensor(out)[:n].copy()

    return forward, seconds


def alone(forward: Callable[[Any], Any], x: np.ndarray, reps: int) -> tuple[float, float]:
    """Median wall and CPU milliseconds per image of `forward` on the batch `x`."""
    np.asarray(forward(x))
    walls, cpus = [], []
    for _ in range(reps):
        t, p = time.perf_counter(), time.process_time()
        np.asarray(forward(x))
        walls.append(time.perf_counter() - t)
        cpus.append(time.process_time() - p)
    return statistics.median(walls) * 1e3 / len(x), statistics.median(cpus) * 1e3 / len(x)


def piped(forward: Callable[[Any], Any], batches: Any, n_images: int) -> float:
    """Milliseconds per image of one pass over `batches` (augmented views), the trunk run on each batch."""
    t = time.perf_counter()
    for x, _ in batches:
        np.asarray(forward(x))
    return (time.perf_counter() - t) * 1e3 / n_images


def main(argv: Sequence[str] | None = None) -> int:
    p = c.parser(__doc__)
    p.add_argument("--data", type=Path, default=None, help="a folder of class sub-folders (default: the shared "
                   "horse-or-human set)")
    p.add_argument("--size", type=int, action="append", default=None, help="input size(s) (default 150 and 300)")
    p.add_argument("--limit", type=int, default=320, help="images in the pipeline case (default 320)")
    p.add_argument("--views", type=int, default=2, help="augmented views per pass (default 2)")
    p.add_argument("--rounds", type=int, default=2, help="timed passes per trunk, interleaved (default 2)")
    p.add_argument("--weights", choices=("imagenet", "none"), default="imagenet",
                   help="the trunk's weights (default imagenet, what a run starts from)")
    a = p.parse_args(argv)
    c.quiet_tensorflow()

    from edgeclf.preprocess import PreprocessSpec
    from edgeclf.train.archs import build_model
    from edgeclf.train.augment import AugmentSpec
    from edgeclf.train.backbones import BACKBONES
    from edgeclf.train.backbones.weights import resolve
    from edgeclf.train.config import TrainConfig
    from edgeclf.train.data import load_dataset
    from edgeclf.train.featcache import split
    from edgeclf.train.tfdata import train_dataset
    from edgeclf.train.threads import configure_threads

    print(configure_threads(), flush=True)
    arch = "efficientnet-lite0"
    data = a.data or c.data_dir(None)
    ds = load_dataset(data)
    items = ds.items[:: max(1, len(ds.items) // a.limit)][: a.limit]
    files, labels = [str(data / rel) for rel, _ in items], [y for _, y in items]
    m = c.print_machine(f"the frozen trunk's feature pass, {arch} ({a.weights}), {len(files)} images x {a.views} "
                        f"augmented views of {data}, batch {BATCH}")
    weights = resolve(arch, a.weights)
    rows, results = [], {}
    for size in a.size or [150, 300]:
        model = build_model(arch, size, len(ds.labels), weights=weights, frozen_bn=True)
        sp = split(model, BACKBONES[arch].blocks, TrainConfig(data_dir=str(data)).fine_tune_blocks)
        if sp is None:
            raise SystemExit(f"{arch} cannot be cut for the feature cache")
        trunks: dict[str, Callable[[Any], Any]] = {"TensorFlow (what edgeclf train runs)": sp.forward}
        convert_s: dict[str, float] = {}
        for threads in (2, 1):
            name = f"TFLite float32, XNNPACK, {threads} thread(s)"
            trunks[name], convert_s[name] = tflite_trunk(sp.trunk, size, threads)
        x = (np.random.default_rng(0).random((BATCH, size, size, 3), dtype=np.float32) * 255.0).round() / 255.0
        ref = np.asarray(sp.forward(x))
        solo = {k: alone(f, x, 5) for k, f in trunks.items()}
        diff = {k: float(np.abs(np.asarray(f(x)) - ref).max()) for k, f in trunks.items()}
        spec = PreprocessSpec(size, size)
        batches = {k: train_dataset(files, labels, spec, BATCH, len(ds.labels), 1337, 0, a.views, AugmentSpec())
                   for k in trunks}
        for k, f in trunks.items():
            piped(f, batches[k], len(files) * a.views)  # fills the cache, traces
        ms: dict[str, list[float]] = {k: [] for k in trunks}
        for _ in range(a.rounds):
            for k, f in trunks.items():
                ms[k].append(piped(f, batches[k], len(files) * a.views))
        base_solo, base = solo[next(iter(trunks))], ms[next(iter(trunks))]
        noise = (max(base) - min(base)) / statistics.median(base) / 2
        for k in trunks:
            ratio = statistics.median([b / v for v, b in zip(ms[k], base)])
            results[f"{size} {k}"] = {"alone_ms_img": solo[k][0], "alone_cpu_ms_img": solo[k][1],
                                      "piped_ms_img": ms[k], "piped_speed_vs_tf": ratio,
                                      "convert_s": convert_s.get(k, 0.0), "max_abs_diff": diff[k]}
            rows.append([f"@{size}", k, f"{solo[k][0]:.1f}", f"{solo[k][1]:.1f}", f"{base_solo[0] / solo[k][0]:.2f}×",
                         f"{statistics.median(ms[k]):.1f}", f"{ratio:.2f}× (±{100 * noise:.0f} %)",
                         f"{convert_s[k]:.1f}" if k in convert_s else "—", f"{diff[k]:.1e}"])
    c.table(["size", "trunk", "alone ms/img", "CPU ms/img", "alone speed vs TF", "in the pipeline ms/img",
             "pipeline speed vs TF (same rounds)", "convert s", "max |diff| vs TF"], rows,
            title=f"the trunk alone (batch of {BATCH}, median of 5) and inside the augmented pipeline "
                  f"({a.rounds} interleaved passes each)")
    m = c.finish(m)
    c.save(a.json, {"machine": m, "images": len(files), "views": a.views, "results": results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
