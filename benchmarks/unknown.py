"""Unknown: how many images of classes a bundle never saw it calls "unknown", and what that costs on its own.

For each bundle, at the threshold stored in its manifest (fitted by `edgeclf convert` on the validation
split and generated non-class images, never on these), through the edge path (`Classifier`: OpenCV decode,
preprocessing, interpreter, calibration):

- the run's **test** split (subjects never seen in training nor used to fit anything): accuracy without
  the rule, the share called unknown and the share of correct answers lost, per class too, with 95 %
  intervals over subjects (`edgeclf.metrics.bootstrap_interval`);
- a folder of **never-seen classes** (default: clothing-small's validation photos for a horse-or-human
  model): the share called unknown, with its interval (each file its own group: random file names).

Bundles with the feature-distance output (`calibration.feature_unknown`) answer unknown when either rule
fires, as the edge does; each rule's share and its AUROC (test vs never-seen, through the edge) are shown.

`--compare-features` also measures, on the run's Keras model, how well another score would separate the
same two sets (AUROC, and the share caught at the threshold that loses 5 % of validation): the calibrated
margin the bundle uses, the penultimate features' norm and their Mahalanobis distance to the class means
(fitted on the training split). Those need a second model output; this is how the choice was measured.

    .venv/bin/python benchmarks/unknown.py --run runs/demo --bundle runs/demo/bundles/150-int8 \\
        [--never-seen ../shared/datasets/clothing-small/validation] [--compare-features]
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

import _common as c

NEVER_SEEN = c.REPO.parent / "shared" / "datasets" / "clothing-small" / "validation"


def _scores(clf: Any, files: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(calibrated probabilities, feature distance (nan without that output)) per file, through the edge path."""
    from edgeclf.imageio import read_bgr

    probs, dist = [], []
    for f in files:
        probs.append(clf(read_bgr(Path(f))).copy())
        dist.append(clf.distance)
    return np.stack(probs), np.array(dist, np.float64)


def measure(bundle: Path, run: Path, never_seen: Path) -> dict[str, Any]:
    from edgeclf.convert.data import resolve_run_data
    from edgeclf.edge.model import Classifier
    from edgeclf.imageio import IMAGE_EXTENSIONS
    from edgeclf.metrics import bootstrap_interval
    from edgeclf.rundir import RunDir

    clf = Classifier.load(bundle, threads=2)
    cal = clf.calibration
    if cal is None or cal.unknown is None:
        raise SystemExit(f"{bundle}: no unknown threshold in its manifest; re-convert it with this edgeclf")
    t = cal.unknown.threshold
    fd = cal.feature_unknown  # the feature-distance rule, when the bundle has that output
    above = fd.threshold if fd is not None else np.inf
    rd = RunDir(run)
    data = resolve_run_data(rd, rd.read_info(), rd.read_split(), None)
    if not data.test:
        raise SystemExit(f"--run {run}: no test split (made before three-way splits); train again")
    files, y, groups = [str(p) for p, _ in data.test], np.array([k for _, k in data.test]), list(data.test_groups)
    p, dist = _scores(clf, files)
    pred, top = p.argmax(axis=1), p.max(axis=1)
    by_margin, by_distance = top < t, dist > above
    unknown, correct = by_margin | by_distance, pred == y
    out: dict[str, Any] = {
        "bundle": str(bundle), "temperature": cal.temperature, "threshold": t,
        "fitted_on": cal.unknown.fitted_on, "validation_unknown": cal.unknown.validation_unknown,
        "generated_unknown": cal.unknown.generated_unknown,
        "test_accuracy": bootstrap_interval(correct, groups, y).to_dict(),
        "test_accuracy_with_unknown": bootstrap_interval(correct & ~unknown, groups, y).to_dict(),
        "test_unknown": bootstrap_interval(unknown, groups, y).to_dict(),
        "correct_lost": round(float(np.mean(unknown[correct])), 4),
        "feature_threshold": fd.threshold if fd is not None else None,
        "test_unknown_by": {"margin": round(float(np.mean(by_margin)), 4),
                            "feature-distance": round(float(np.mean(by_distance)), 4)},
        "recall": {lab: {"without": round(float(np.mean(correct[y == k])), 4),
                         "with_unknown": round(float(np.mean((correct & ~unknown)[y == k])), 4),
                         "n": int(np.sum(y == k))} for k, lab in enumerate(clf.labels)},
    }
    seen = sorted(str(f) for f in never_seen.rglob("*") if f.suffix.lower() in IMAGE_EXTENSIONS)
    if not seen:
        raise SystemExit(f"--never-seen {never_seen}: no images")
    q, qd = _scores(clf, seen)
    ns_margin, ns_distance = q.max(axis=1) < t, qd > above
    ns_unknown = ns_margin | ns_distance
    out["never_seen"] = {"folder": str(never_seen), "n": len(seen),
                         "unknown": bootstrap_interval(ns_unknown, seen).to_dict(),
                         "unknown_by": {"margin": bootstrap_interval(ns_margin, seen).to_dict(),
                                        "feature-distance": bootstrap_interval(ns_distance, seen).to_dict()},
                         "auroc": {"margin": round(_auroc(top, q.max(axis=1)), 3),
                                   **({"feature-distance": round(_auroc(-dist, -qd), 3)} if fd is not None else {})},
                         "called": dict(Counter(clf.labels[i] if not u else "unknown"
                                                for i, u in zip(q.argmax(axis=1), ns_unknown)))}
    return out


def _auroc(inside: np.ndarray, outside: np.ndarray) -> float:
    """P(an in-distribution image scores higher than an outside one); ties count half."""
    s = np.concatenate([inside, outside])
    order = s.argsort(kind="stable")
    ranks = np.empty(len(s))
    ranks[order] = np.arange(1, len(s) + 1)
    for v in np.unique(s):  # average ranks of ties
        m = s == v
        ranks[m] = ranks[m].mean()
    n1, n0 = len(inside), len(outside)
    return float((ranks[:n1].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def compare_features(run: Path, size: int, never_seen: Path) -> dict[str, Any]:
    """Margin vs penultimate-feature scores on the run's Keras model (float, TensorFlow preprocessing)."""
    import keras

    from edgeclf.convert.data import load_images, resolve_run_data
    from edgeclf.convert.export import load_keras
    from edgeclf.imageio import IMAGE_EXTENSIONS
    from edgeclf.rundir import RunDir

    rd = RunDir(run)
    info = rd.read_info()
    data = resolve_run_data(rd, info, rd.read_split(), None)
    spec = info.models[size].preprocess
    model = load_keras(run / info.models[size].file)
    pen = keras.Model(model.inputs, [model.layers[-2].output, model.outputs[0]])
    seen = [(f, 0) for f in sorted(never_seen.rglob("*")) if f.suffix.lower() in IMAGE_EXTENSIONS]

    def feats(items: Any) -> tuple[np.ndarray, np.ndarray]:
        f, p = pen.predict(load_images(items, spec), verbose=0, batch_size=32)
        return np.asarray(f).reshape(len(items), -1), np.asarray(p).reshape(len(items), -1)

    (ftr, _), (fv, pv), (ft, pt), (fn, pn) = (feats(s) for s in (data.train, data.val, data.test, seen))
    ytr = np.array([k for _, k in data.train])
    mu = np.stack([ftr[ytr == k].mean(0) for k in np.unique(ytr)])
    centred = np.concatenate([ftr[ytr == k] - mu[i] for i, k in enumerate(np.unique(ytr))])
    prec = np.linalg.inv(centred.T @ centred / len(centred) + 1e-3 * np.eye(ftr.shape[1]))

    def margin(p: np.ndarray) -> np.ndarray:
        q = np.clip(p[:, -1] if p.shape[1] == 1 else p.max(1), 1e-6, 1 - 1e-6)
        return np.abs(np.log(q / (1 - q)))

    def maha(f: np.ndarray) -> np.ndarray:
        return -np.min([np.einsum("ij,jk,ik->i", f - m, prec, f - m) for m in mu], axis=0)

    out = {}
    for name, score in (("calibrated margin (shipped)", lambda f, p: margin(p)),
                        ("feature norm", lambda f, p: np.linalg.norm(f, axis=1)),
                        ("Mahalanobis to class means", lambda f, p: maha(f))):
        v, t, n = score(fv, pv), score(ft, pt), score(fn, pn)
        cut = float(np.quantile(v, 0.05))
        out[name] = {"auroc_test_vs_never_seen": round(_auroc(t, n), 3),
                     "never_seen_caught": round(float(np.mean(n < cut)), 3),
                     "test_lost": round(float(np.mean(t < cut)), 3)}
    return out


def main(argv: list[str] | None = None) -> int:
    p = c.parser(__doc__)
    p.add_argument("--run", type=Path, required=True, help="the run the bundles came from (its test split)")
    p.add_argument("--bundle", type=Path, action="append", required=True, help="bundle folder(s) to measure")
    p.add_argument("--never-seen", type=Path, default=NEVER_SEEN, help=f"images of other classes (default "
                   f"{NEVER_SEEN})")
    p.add_argument("--compare-features", action="store_true", help="also compare OOD scores on the Keras model")
    a = p.parse_args(argv)
    c.quiet_tensorflow()
    m = c.print_machine(f"unknown: {a.run}")
    results = [measure(b, a.run, a.never_seen) for b in a.bundle]
    rows = []
    for r in results:
        ti, tu, ns = r["test_accuracy"], r["test_unknown"], r["never_seen"]["unknown"]
        fd = r["never_seen"]["unknown_by"]["feature-distance"]
        rows.append([Path(r["bundle"]).name, r["temperature"], f"{r['threshold']:.3f}",
                     "-" if r["feature_threshold"] is None else f"{r['feature_threshold']:.3f}",
                     " / ".join(f"{v}" for v in r["never_seen"]["auroc"].values()),
                     f"{100 * fd['accuracy']:.1f} %",
                     f"{100 * ns['accuracy']:.1f} % [{100 * ns['low']:.0f}, {100 * ns['high']:.0f}]",
                     f"{100 * tu['accuracy']:.1f} % [{100 * tu['low']:.0f}, {100 * tu['high']:.0f}]",
                     f"{100 * r['correct_lost']:.1f} %",
                     f"{ti['accuracy']:.3f} -> {r['test_accuracy_with_unknown']['accuracy']:.3f}",
                     f"{100 * (r['generated_unknown'] or 0):.0f} %"])
    c.table(["bundle", "T", "unknown below", "distance above", "AUROC test vs never-seen: margin / distance",
             "never-seen unknown by distance", f"never-seen called unknown, either rule (n={results[0]['never_seen']['n']})",
             f"test called unknown (n={results[0]['test_unknown']['n_images']}, {results[0]['test_unknown']['n_groups']} subjects)",
             "correct answers lost", "test accuracy -> correct and not unknown", "generated caught"], rows,
            title="at the manifest's threshold, through the edge path (95 % intervals over subjects / files)")
    for r in results:
        print(f"{Path(r['bundle']).name}: recall per class without -> with unknown: "
              + ", ".join(f"{k} {v['without']:.3f} -> {v['with_unknown']:.3f} (n={v['n']})" for k, v in r["recall"].items())
              + f"; never-seen called: {r['never_seen']['called']}; test called unknown by rule: {r['test_unknown_by']}")
    features = {}
    if a.compare_features:
        size = int(Path(results[0]["bundle"]).name.split("-")[0])
        features = compare_features(a.run, size, a.never_seen)
        c.table(["score (Keras model, float)", "AUROC test vs never-seen", "never-seen caught at 5 % validation loss",
                 "test lost there"], [[k, v["auroc_test_vs_never_seen"], v["never_seen_caught"], v["test_lost"]]
                                      for k, v in features.items()],
                title=f"which score separates never-seen classes (models/{size}.keras, penultimate features)")
    m = c.finish(m)
    c.save(a.json, {"machine": m, "run": str(a.run), "bundles": results, "features": features})
    return 0


if __name__ == "__main__":
    sys.exit(main())
