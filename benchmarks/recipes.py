"""Recipe comparison by group K-fold cross-validation (`edgeclf train --cv K`), never by a test figure.

Each candidate is a set of `edgeclf train` options; each runs `--cv K` in its own process, one after the
other (2 cores: never in parallel), and the table shows the mean ± sd over folds of the test-fold accuracy
and of the camera-sim accuracy (the same test subjects as camera-like frames), the validation accuracy
(what picked the epoch, for contrast), and the wall time, with the ratio of each candidate's camera-sim
accuracy to the first candidate's (the baseline, edgeclf 0.1's recipe) measured in the same run.

    .venv/bin/python benchmarks/recipes.py DATA [--k 3] [--size 150] [--only NAME ...] [--out runs/recipes]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

CANDIDATES: dict[str, list[str]] = {
    "edge · mild aug, pick by val acc (0.1 default)": ["--arch", "edge", "--augment-policy", "mild",
                                                       "--label-smoothing", "0"],
    "edge · camera aug + LS 0.1, pick by val acc": ["--arch", "edge", "--select", "accuracy"],
    "edge · camera aug + LS 0.1, pick by val loss, no early stop": ["--arch", "edge", "--select", "loss",
                                                                     "--patience", "100"],
    "seed (course net) · camera aug + LS 0.1, pick by val loss": ["--arch", "seed", "--select", "loss",
                                                                  "--patience", "100"],
    "edge-sep · camera aug + LS 0.1, pick by val loss": ["--arch", "edge-sep", "--select", "loss",
                                                         "--patience", "100"],
    "edge · camera aug + LS 0.1, last epoch": ["--arch", "edge", "--select", "last"],
    "edge · wide camera aug + LS 0.1, last epoch": ["--arch", "edge", "--select", "last", "--augment-policy", "wide"],
    "efficientnet-lite0 · ImageNet, head 10 + top 3 blocks 20 (30 epochs), camera aug + LS 0.1": [
        "--arch", "efficientnet-lite0", "--weights", "imagenet", "--select", "last", "--head-epochs", "10",
        "--epochs", "30"],
    "efficientnet-lite0 · head 5 + top 3 blocks 10 (15 epochs)": [
        "--arch", "efficientnet-lite0", "--weights", "imagenet", "--select", "last", "--head-epochs", "5",
        "--epochs", "15"],
    "efficientnet-lite0 · head 3 + top 3 blocks 7 (10 epochs)": [
        "--arch", "efficientnet-lite0", "--weights", "imagenet", "--select", "last", "--head-epochs", "3",
        "--epochs", "10"],
    **{f"efficientnet-lite0 · head 10 + top 3 blocks 20, trunk features cached over {k} augmented views": [
        "--arch", "efficientnet-lite0", "--weights", "imagenet", "--select", "last", "--head-epochs", "10",
        "--epochs", "30", "--feature-views", str(k)] for k in (3, 6, 10, 30)},
}


def int8_latency_ms(arch: str, size: int, repeats: int = 200) -> tuple[float, int]:
    """Median invoke time of the arch's int8 model (uint8 input) on ai-edge-litert, 2 threads, and its bytes.
    Latency does not depend on the weights, so a fresh model calibrated on noise serves."""
    import numpy as np

    from edgeclf.convert.export import convert_keras
    from edgeclf.convert.quantize import QuantizationKind
    from edgeclf.train.archs import build_model

    model = build_model(arch, size, 2)
    rng = np.random.default_rng(0)

    def representative():  # noqa: ANN202
        for _ in range(16):
            yield [rng.random((1, size, size, 3), dtype=np.float32)]

    (_, data), = convert_keras(model, size, (QuantizationKind.for_int8(),), representative)
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_content=data, num_threads=2)
    it.allocate_tensors()
    inp = it.get_input_details()[0]
    it.set_tensor(inp["index"], rng.integers(0, 256, inp["shape"], dtype=np.uint8))
    for _ in range(10):
        it.invoke()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        it.invoke()
        times.append(time.perf_counter() - t0)
    return 1e3 * float(np.median(times)), len(data)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data")
    ap.add_argument("--k", type=int, default=3)
    ap.add_argument("--size", type=int, default=150)
    ap.add_argument("--epochs", type=int, default=None, help="for every candidate (default: each one's own or "
                    "edgeclf's default)")
    ap.add_argument("--only", action="append", default=[], help="substring of a candidate's name; repeatable")
    ap.add_argument("--out", default="runs/recipes")
    a = ap.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for i, (name, opts) in enumerate(CANDIDATES.items()):
        if a.only and not any(s in name for s in a.only):
            continue
        run = out / f"cand-{i}-k{a.k}-{a.size}"
        if not (run / "cv.json").exists():
            if run.exists():
                import shutil

                shutil.rmtree(run)
            cmd = [sys.executable, "-m", "edgeclf", "-q", "train", a.data, "--cv", str(a.k), "--size", str(a.size),
                   "--out", str(run), *(["--epochs", str(a.epochs)] if a.epochs else []), *opts]
            print("$", " ".join(cmd), flush=True)
            t0 = time.perf_counter()
            subprocess.run(cmd, check=True)
            print(f"  {time.perf_counter() - t0:.0f} s", flush=True)
        doc = json.loads((run / "cv.json").read_text())
        m = doc["summary"][str(a.size)]
        lat, nbytes = int8_latency_ms(doc["arch"], a.size)
        rows.append((name, m, doc["seconds"], lat, nbytes))
    if not rows:
        return
    base = rows[0][1]["camera_sim_mean"]
    print(f"\ngroup {a.k}-fold CV at {a.size} px on {a.data}")
    print("| candidate | test acc | camera-sim | val acc | CV min | int8 ms @%d | int8 KB | camera-sim / first |" % a.size)
    print("|---|---|---|---|---|---|---|---|")
    for name, m, sec, lat, nbytes in rows:
        print(f"| {name} | {m['test_mean']:.3f} ± {m['test_sd']:.3f} | {m['camera_sim_mean']:.3f} ± "
              f"{m['camera_sim_sd']:.3f} | {m['val_mean']:.3f} ± {m['val_sd']:.3f} | {sec / 60:.1f} | {lat:.2f} | "
              f"{nbytes / 1024:.0f} | {m['camera_sim_mean'] / base:.2f}× |")


if __name__ == "__main__":
    main()
