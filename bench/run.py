"""`edgeclf bench`: every bundle on every installed runtime, in one table.

For each bundle of a run (or a folder of bundles, or one bundle) and each runtime: file size, load time,
held-out top-1 accuracy (the run's split.json, read and preprocessed exactly as the edge does), agreement
with the Keras model, invoke latency p50/p95 at each thread count, end-to-end per-frame time, peak RSS of a
process that only runs the bundle, MACs per frame and the MAC/s achieved.

Edge-light: numpy, OpenCV and an interpreter. TensorFlow is imported only for the Keras agreement, only
when it is installed and the run has its models; otherwise the agreement the converter recorded in the
manifest is shown.
"""

from __future__ import annotations

import importlib.util
import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Mapping, Sequence

from edgeclf.bundle import MANIFEST_FILE, Manifest, load_bundle, read_manifest, resolve_bundle_dir
from edgeclf.bench.measure import Job, measure, thread_counts
from edgeclf.bench.report import BenchReport, BenchRow, finish_machine, machine_info, write_outputs
from edgeclf.edge.runtime import RUNTIME_MODULES, available_runtimes, check_threads, find_runtime
from edgeclf.errors import BundleError, EdgeclfError, RunError, UsageError
from edgeclf.imageio import IMAGE_EXTENSIONS
from edgeclf.progress import Progress
from edgeclf.rundir import RUN_FILE, RunDir

log = logging.getLogger(__name__)

TFLITE_RUNTIME = "tflite-runtime"


@dataclass(frozen=True)
class BenchConfig:
    """How hard to measure and what to include. Empty tuples mean the defaults (1 thread and all cores;
    every interpreter importable here, plus tflite-runtime when `tflite_python` is given)."""

    repeats: int = 5
    warmup: int = 5
    frames: int = 30
    threads: tuple[int, ...] = ()
    runtimes: tuple[str, ...] = ()
    source: Path | None = None  # video file or image folder for the per-frame timing
    run: Path | None = None  # held-out data and Keras models, when the target is not a run
    data: Path | None = None  # the run's data folder, when it moved
    max_images: int = 0  # cap on held-out images (0 = all)
    keras: bool = True
    rss: bool = True
    plot: bool = True
    tflite_python: str | None = None

    def __post_init__(self) -> None:
        for name, value, low in (("--repeats", self.repeats, 1), ("--warmup", self.warmup, 0),
                                 ("--frames", self.frames, 1), ("--max-images", self.max_images, 0)):
            if value < low:
                raise UsageError(f"{name} {value} is too small; expected an integer >= {low}")
        for t in self.threads:
            check_threads(t)
        known = [n for n, _ in RUNTIME_MODULES]
        for r in self.runtimes:
            if r not in known:
                raise UsageError(f"--runtime {r!r} is unknown; expected one of {', '.join(known)}")


@dataclass(frozen=True)
class Target:
    bundles: tuple[Path, ...]
    run: Path | None


def _is_bundle(d: Path) -> bool:
    return (d / MANIFEST_FILE).is_file()


def _run_of(bundle: Path, m: Manifest) -> Path | None:
    """The run a bundle came from: RUN/bundles/<name>, or the manifest's source.run if it still exists."""
    candidates = [bundle.parent.parent]
    if m.source.run:
        candidates.append(Path(m.source.run))
    for c in candidates:
        if (c / RUN_FILE).is_file():
            return c
    return None


def resolve_target(target: Path, run: Path | None = None) -> Target:
    """The bundles to measure and the run that holds their held-out data (if any)."""
    p = Path(target)
    if not p.exists():
        raise BundleError(f"{p}: no such run or bundle; expected a run directory (runs/train-N), a folder of "
                          "bundles, or one bundle folder")
    if p.is_dir() and (p / RUN_FILE).is_file():
        found = tuple(sorted(d for d in (p / "bundles").glob("*") if d.is_dir() and _is_bundle(d)))
        if not found:
            raise BundleError(f"{p}: the run has no bundles yet; run `edgeclf convert {p} --quantize` first")
        return Target(found, run or p)
    if p.is_dir() and not _is_bundle(p):
        found = tuple(sorted(d for d in p.iterdir() if d.is_dir() and _is_bundle(d)))
        if not found:
            raise BundleError(f"{p}: holds no bundle (no sub-folder with {MANIFEST_FILE}); expected a run "
                              "directory, a folder of bundles or a bundle made by `edgeclf convert`")
    else:
        found = (resolve_bundle_dir(p),)
    if run is None:
        for b in found:  # the first bundle whose manifest reads says where its run is
            try:
                run = _run_of(b, read_manifest(b))
                break
            except EdgeclfError:
                continue
    return Target(found, run)


def split_bad(bundles: Sequence[Path]) -> tuple[tuple[Path, ...], dict[Path, str]]:
    """(bundles that verify, {bundle: why} for those that do not): one bad bundle is a row, not the end."""
    good, bad = [], {}
    for b in bundles:
        try:
            load_bundle(b)
        except EdgeclfError as e:
            bad[b] = str(e)
            log.warning("%s: skipped: %s", b.name, e)
        else:
            good.append(b)
    if not good:
        first = next(iter(bad))
        raise BundleError(bad[first] if len(bad) == 1 else
                          f"none of the {len(bad)} bundles can be measured; {first.name}: {bad[first]}")
    return tuple(good), bad


def held_out(run: Path, data: Path | None = None, limit: int = 0) -> tuple[tuple[tuple[str, str], ...], str]:
    """(image path, label name) of the run's test side (measured once at training; validation for runs made
    before test sides existed), and a note when they cannot be found."""
    rd = RunDir(run)
    info, split = rd.read_info(), rd.read_split()
    paths = split.paths(data or info.data_dir)
    base = Path(split.test_dir or split.val_dir or data or info.data_dir)
    files = tuple((f, info.labels[i]) for f, i in (paths.test or paths.val))
    if not files:
        return (), f"{run}: its split has no held-out images; accuracy not measured"
    missing = [f for f, _ in files if not Path(f).is_file()]
    if missing:
        return (), (f"held-out images of {run} are not at {base} ({len(missing)} missing); accuracy not measured; "
                    "pass the data folder with --data DIR")
    if limit and len(files) > limit:
        step = len(files) / limit  # evenly spaced: keeps the classes' proportions
        files = tuple(files[int(i * step)] for i in range(limit))
    return files, ""


def held_out_groups(run: Path, files: Sequence[tuple[str, str]]) -> tuple[str, ...]:
    """The subject of each held-out image, by the group pattern the run was trained with (as `convert`)."""
    import json

    from edgeclf.groups import DEFAULT_GROUP_PATTERN, groups_for
    from edgeclf.rundir import CONFIG_FILE

    try:
        pattern = json.loads((run / CONFIG_FILE).read_text("utf-8")).get("group_pattern", DEFAULT_GROUP_PATTERN)
    except (OSError, ValueError, AttributeError):
        pattern = DEFAULT_GROUP_PATTERN
    return tuple(groups_for([(f, 0) for f, _ in files], str(pattern))[0])


def frame_files(source: Path | None, eval_files: Sequence[tuple[str, str]], count: int) -> tuple[str, ...]:
    """Real frames for the per-frame timing: --source (video or image folder), else held-out images."""
    if source is not None:
        if source.is_dir():
            files = sorted(str(f) for f in source.iterdir() if f.suffix.lower() in IMAGE_EXTENSIONS)
            if not files:
                raise UsageError(f"--source {source}: no images in it; expected a video file or a folder of images")
            return tuple(files)
        if not source.is_file():
            raise UsageError(f"--source {source}: no such file or folder; expected a video file or image folder")
        return (str(source),)
    if not eval_files:
        return ()
    step = max(1, len(eval_files) // count)
    return tuple(f for f, _ in eval_files[::step][:count])


def _runtimes(cfg: BenchConfig) -> list[tuple[str, str | None]]:
    """(runtime name, python to run it in or None for this process)."""
    here = available_runtimes(include_tensorflow="tensorflow" in cfg.runtimes)
    wanted = list(cfg.runtimes) or here + ([TFLITE_RUNTIME] if cfg.tflite_python and TFLITE_RUNTIME not in here else [])
    plan = []
    for name in dict.fromkeys(wanted):
        if name in here:
            plan.append((name, None))
        elif name == TFLITE_RUNTIME and cfg.tflite_python:
            plan.append((name, cfg.tflite_python))
        elif name == TFLITE_RUNTIME:
            raise UsageError("--runtime tflite-runtime: it is not installed in this Python; pass the python of a "
                             "venv that has it with --tflite-python PATH (or $EDGECLF_TFL_PYTHON)")
        else:
            raise UsageError(f"--runtime {name}: it is not installed here; installed: {', '.join(here) or 'none'}")
    if not plan:
        raise UsageError("no TFLite interpreter is installed; `pip install 'edgeclf[edge]'` (ai-edge-litert) or "
                         "`'edgeclf[tflite-runtime]'`")
    return plan


def _quant(name: str, m: Manifest) -> str:
    """The manifest's quantization kind; a manifest without one (made by hand) falls back to the folder name."""
    return m.source.quantization or name.rsplit("-", 1)[-1]


def _row(d: Mapping[str, Any], m: Manifest, keras: Mapping[int, Sequence[str]],
         held: Sequence[tuple[str, str]] = (), groups: Sequence[str] = ()) -> BenchRow:
    size = m.preprocess.height
    agree, src = None, ""
    decisions = [m.labels[i] for i in d["decisions"]]
    iv = None
    if d["accuracy"] is not None and groups and len(decisions) == len(held) == len(groups):
        from edgeclf.metrics import bootstrap_interval

        iv = bootstrap_interval([a == t for a, (_, t) in zip(decisions, held)], groups,
                                [m.labels.index(t) for _, t in held])
    if size in keras and decisions and len(decisions) == len(keras[size]):
        agree, src = sum(a == b for a, b in zip(decisions, keras[size])) / len(decisions), "keras"
    elif m.metrics.agreement is not None:
        agree, src = m.metrics.agreement, "manifest"
    p50, macs = d["p50_ms"], d["macs"]
    return BenchRow(
        variant=d["variant"], size=size, quant=_quant(d["variant"], m), runtime=d["runtime"],
        runtime_version=d["runtime_version"], threads=d["threads"], status=d["status"],
        size_kb=d["size_bytes"] / 1024.0, load_ms=d["load_ms"], accuracy=d["accuracy"], agreement=agree,
        agreement_src=src, p50_ms=p50, p95_ms=d["p95_ms"], e2e_p50_ms=d["e2e_p50_ms"], e2e_p95_ms=d["e2e_p95_ms"],
        e2e_ratio=d["e2e_p50_ms"] / p50 if p50 and d["e2e_p50_ms"] else None,
        peak_rss_mb=d["peak_rss_mb"], first_frame_s=d["first_frame_s"],
        mmacs=macs / 1e6 if macs is not None else None,
        gmacs_per_s=macs / (p50 * 1e6) if macs and p50 else None,
        spread_pct=d["spread_pct"], repeats=d["repeats"], frames=d["frames"], n_eval=d["n_eval"], bundle=d["bundle"],
        acc_low=iv.low if iv else None, acc_high=iv.high if iv else None, acc_groups=iv.n_groups if iv else None,
        acc_enough=iv.enough if iv else None)


def run_bench(target: Path, cfg: BenchConfig = BenchConfig(), out: Path | None = None,
              progress: Progress | None = None) -> tuple[BenchReport, list[Path]]:
    """Measure, write bench.csv/.md/.json/.png under `out` (default RUN/bench, else ./bench), return both."""
    tgt = resolve_target(target, cfg.run)
    plan = _runtimes(cfg)
    notes: list[str] = []
    eval_files: tuple[tuple[str, str], ...] = ()
    if tgt.run is not None:
        try:
            eval_files, note = held_out(tgt.run, cfg.data, cfg.max_images)
        except RunError as e:
            note = f"{e}; accuracy not measured"
        if note:
            notes.append(note)
            log.warning("%s", note)
    else:
        notes.append("no run directory for these bundles (give --run RUN): accuracy not measured")
    frames = frame_files(cfg.source, eval_files, cfg.frames)
    if not frames:
        notes.append("per-frame timing on generated 640x480 frames (no --source and no held-out images)")
    elif cfg.source is not None:
        notes.append(f"per-frame timing on {cfg.source}")
    else:
        notes.append(f"per-frame timing on {len(frames)} held-out images; accuracy on {len(eval_files)} held-out "
                     f"images of {tgt.run}")
    good, bad = split_bad(tgt.bundles)
    job = Job(bundles=tuple(str(b) for b in good), eval_files=eval_files, frame_files=frames,
              threads=tuple(sorted(set(cfg.threads))) or thread_counts(), repeats=cfg.repeats,
              warmup=cfg.warmup, frames=cfg.frames, rss=cfg.rss)

    versions: dict[str, str] = {}
    raw: list[dict[str, Any]] = []
    machine = machine_info({})
    for name, python in plan:
        steps, done = job.steps(), [0]

        def tick(what: str, _name: str = name, _done: list[int] = done) -> None:
            _done[0] += 1  # one tick per step of this runtime's job
            if progress is not None:
                progress(f"{_name}: {what}", _done[0], steps)

        if python is None:
            rt = find_runtime(name)
            versions[name] = rt.version
            raw += measure(job, rt, tick)
        else:
            from edgeclf.bench.worker import run_elsewhere

            versions[name], rows = run_elsewhere(python, name, job, tick)
            raw += rows
    machine = finish_machine({**machine, "runtimes": versions})

    manifests = {b: read_manifest(b) for b in job.bundles}
    keras_dec: dict[int, list[str]] = {}
    keras_acc: dict[int, float] = {}
    if cfg.keras and tgt.run is not None and eval_files:
        keras_dec, keras_acc, note = keras_decisions(tgt.run, {m.preprocess.height for m in manifests.values()},
                                                     eval_files)
        if note:
            notes.append(note)
    groups = held_out_groups(tgt.run, eval_files) if tgt.run is not None and eval_files else ()
    rows = tuple(_row(d, manifests[d["bundle"]], keras_dec, eval_files, groups) for d in raw)
    rows += tuple(_bad_row(b, why, name, versions.get(name, ""), t, job.frames)
                  for b, why in bad.items() for name, _ in plan for t in job.threads)
    if bad:
        notes.append(f"{len(bad)} bundle(s) could not be read and were not measured: "
                     + ", ".join(b.name for b in bad))
    report = BenchReport(str(target), machine, rows, tuple(notes), keras_acc)
    out = out or ((tgt.run / "bench") if tgt.run is not None and Path(target) == tgt.run else Path("bench"))
    written, more = write_outputs(report, out, cfg.plot)
    if more:
        report = replace(report, notes=report.notes + tuple(more))
    return report, written


def _bad_row(bundle: Path, why: str, runtime: str, version: str, threads: int, frames: int) -> BenchRow:
    """The row of a bundle that does not verify: its name and why, nothing measured."""
    try:
        size_kb = (bundle / "model.tflite").stat().st_size / 1024.0
    except OSError:
        size_kb = 0.0
    return BenchRow(variant=bundle.name, size=0, quant="?", runtime=runtime, runtime_version=version, threads=threads,
                    status="bad bundle: " + " ".join(why.split())[:160], size_kb=size_kb, load_ms=None, accuracy=None,
                    agreement=None, agreement_src="", p50_ms=None, p95_ms=None, e2e_p50_ms=None, e2e_p95_ms=None,
                    e2e_ratio=None, peak_rss_mb=None, first_frame_s=None, mmacs=None, gmacs_per_s=None,
                    spread_pct=None, repeats=0, frames=frames, n_eval=0, bundle=str(bundle))


def keras_decisions(run: Path, sizes: set[int], files: Sequence[tuple[str, str]]
                    ) -> tuple[dict[int, list[str]], dict[int, float], str]:
    """The Keras model's label per held-out image, per input size (TensorFlow imported here, lazily)."""
    if importlib.util.find_spec("tensorflow") is None:
        return {}, {}, "TensorFlow is not installed: agreement is the one recorded by the converter"
    import numpy as np

    from edgeclf.bundle import TensorSpec
    from edgeclf.metrics import decide
    from edgeclf.edge.preprocess import Preprocessor
    from edgeclf.imageio import read_bgr

    info = RunDir(run).read_info()
    images = [read_bgr(f) for f, _ in files]
    truth = [label for _, label in files]
    decisions: dict[int, list[str]] = {}
    accuracy: dict[int, float] = {}
    for size in sorted(sizes):
        rm = info.models.get(size)
        if rm is None or not (run / rm.file).is_file():
            continue
        model = _load_keras(run / rm.file)
        pre = Preprocessor(rm.preprocess, TensorSpec("float32"))
        batch = np.concatenate([pre(img).copy() for img in images])
        probs = model.predict(batch, batch_size=16, verbose=0)
        dec = [info.labels[i] for i in decide(np.asarray(probs).reshape(len(probs), -1))]
        decisions[size] = dec
        accuracy[size] = sum(a == b for a, b in zip(dec, truth)) / len(dec)
    if not decisions:
        return {}, {}, f"{run}: no Keras model for sizes {sorted(sizes)}; agreement is the converter's"
    return decisions, accuracy, ""


def _load_keras(path: Path) -> Any:
    """edgeclf's one safe loader (`edgeclf.train.modelio`), TensorFlow's native log kept quiet as convert does."""
    from edgeclf.convert.export import load_keras

    return load_keras(path)
