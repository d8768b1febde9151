"""The input pipeline alone: edgeclf's training batches (uint8 cache, scaling and augmentation on whole
batches) against the pipeline before issue 15 (float32 cache, augmentation image by image), no model.

Both read the same files of the shared set (`--limit` of them), batch 32, camera augmentation on; the first
pass fills the cache and is not timed. Then rounds A B A B ...: images/s of one epoch each, the median, the
ratio per round and the spread of the baseline's rounds (the noise of a busy machine). Also the cache's
memory for the whole shared set at each size.

    nice -n 10 .venv/bin/python benchmarks/train_input.py [--size 150 --size 300] [--limit 256] [--rounds 3]
"""

from __future__ import annotations

import statistics
import sys
import time
from typing import Any, Sequence

import _common as c

BATCH = 32


def before_15(files: Sequence[str], labels: Sequence[int], size: int) -> Any:
    """The earlier pipeline: decode to float32, cache float32, augment each image in the map, then batch."""
    import tensorflow as tf

    from edgeclf.preprocess import PreprocessSpec
    from edgeclf.train.augment import AugmentSpec, augment
    from edgeclf.train.tfdata import load_and_preprocess

    spec = PreprocessSpec(size, size)
    n = len(files)
    ds = tf.data.Dataset.from_tensor_slices((list(files), tf.constant(list(labels), tf.float32)))
    ds = ds.map(lambda p, y: (load_and_preprocess(p, spec), y), num_parallel_calls=tf.data.AUTOTUNE,
                deterministic=True).cache()
    ds = ds.shuffle(n, seed=1, reshuffle_each_iteration=False)
    ds = tf.data.Dataset.zip(ds, tf.data.Dataset.range(n)).map(
        lambda xy, i: (augment(xy[0], tf.stack([tf.constant(7, tf.int64), i]), AugmentSpec(), 0.0, 1.0), xy[1]),
        num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.batch(BATCH).prefetch(tf.data.AUTOTUNE)


def now_15(files: Sequence[str], labels: Sequence[int], size: int) -> Any:
    from edgeclf.preprocess import PreprocessSpec
    from edgeclf.train.augment import AugmentSpec
    from edgeclf.train.tfdata import train_dataset

    return train_dataset(list(files), list(labels), PreprocessSpec(size, size), BATCH, 2, 1, 0, 1, AugmentSpec())


def _epoch(ds: Any, n: int) -> float:
    t0 = time.perf_counter()
    for _ in ds:
        pass
    return n / (time.perf_counter() - t0)


def main(argv: list[str] | None = None) -> int:
    p = c.parser(__doc__)
    p.add_argument("--data", default=None, help="data folder (default: the shared horse-or-human set)")
    p.add_argument("--size", type=int, action="append", default=None, help="input size(s) (default 150 and 300)")
    p.add_argument("--limit", type=int, default=256, help="images read (default 256)")
    p.add_argument("--rounds", type=int, default=3, help="timed epochs per pipeline, interleaved (default 3)")
    a = p.parse_args(argv)
    c.quiet_tensorflow()

    from edgeclf.preprocess import PreprocessSpec
    from edgeclf.train.data import load_dataset
    from edgeclf.train.threads import configure_threads
    from edgeclf.train.tfdata import cache_bytes

    print(configure_threads(), flush=True)
    data = c.data_dir(a.data)
    ds = load_dataset(data)
    items = ds.items[:: max(1, len(ds.items) // a.limit)][: a.limit]
    files, labels = [str(data / rel) for rel, _ in items], [y for _, y in items]
    m = c.print_machine(f"training input pipeline, {len(files)} images of {data}, batch {BATCH}, augmentation on")
    rows, results = [], {}
    for size in a.size or [150, 300]:
        pipes = {"before #15 (float32 cache, per image)": before_15(files, labels, size),
                 "now (uint8 cache, whole batches)": now_15(files, labels, size)}
        for d in pipes.values():
            _epoch(d, len(files))  # fills the cache, traces the functions
        rates: dict[str, list[float]] = {k: [] for k in pipes}
        for _ in range(a.rounds):
            for name, d in pipes.items():
                rates[name].append(_epoch(d, len(files)))
        base = rates[next(iter(pipes))]
        noise = (max(base) - min(base)) / statistics.median(base) / 2
        float_cache = cache_bytes(len(ds.items), PreprocessSpec(size, size)) * 4
        for name, r in rates.items():
            ratio = statistics.median([x / y for x, y in zip(r, base)])
            cache = float_cache if name.startswith("before") else float_cache // 4
            results[f"{size} {name}"] = {"img_s": r, "ratio": ratio, "cache_bytes_whole_set": cache}
            rows.append([f"@{size}", name, statistics.median(r), f"{ratio:.2f}×", f"±{100 * noise:.0f} %",
                         f"{cache / 1e6:.0f} MB"])
    c.table(["size", "pipeline", "img/s", "vs before (same rounds)", "noise", f"cache, all {len(ds.items)} images"],
            rows, title=f"input pipeline alone, {a.rounds} interleaved epochs each")
    m = c.finish(m)
    c.save(a.json, {"machine": m, "images": len(files), "results": results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
