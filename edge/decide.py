"""What `camera` and `classify` answer and which changes they report: --threshold, --unknown, --config, and
the events' label filter (--events-only / --events-ignore).

A config file (JSON; YAML too when PyYAML is installed, which the edge does not need) holds the same
choices as the flags; a flag given on the command line wins over the file:

    {"threshold": 0.5, "thresholds": {"humans": 0.8, "horses": 0.6}, "unknown": "auto",
     "events_only": ["humans"], "events_ignore": ["uncertain"]}
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

from edgeclf.edge.postprocess import UNCERTAIN, UNKNOWN, SmoothConfig, probability
from edgeclf.errors import UsageError

CONFIG_KEYS = ("threshold", "thresholds", "unknown", "events_only", "events_ignore")
MAX_CONFIG_BYTES = 1024**2


def parse_thresholds(values: Iterable[str]) -> tuple[float | None, tuple[tuple[str, float], ...]]:
    """--threshold values: `P` (every class) and `LABEL=P` (one class; repeat the flag for more)."""
    default: float | None = None
    per_class: dict[str, float] = {}
    for raw in values:
        label, sep, value = raw.rpartition("=")
        if not sep:
            default = probability(raw, "--threshold")
        elif not label:
            raise UsageError(f"--threshold {raw!r}: expected P or LABEL=P (e.g. humans=0.8)")
        else:
            per_class[label] = probability(value, f"--threshold {label}=")
    return default, tuple(per_class.items())


def parse_unknown(value: str | None) -> str | float | None:
    """--unknown off|auto|P (None: the manifest's threshold when it has one)."""
    if value is None or value in ("off", "auto"):
        return value
    try:
        return probability(value, "--unknown")
    except UsageError:
        raise UsageError(f"--unknown {value!r}: expected off, auto or a probability between 0 and 1") from None


@dataclass(frozen=True)
class DecideFile:
    """The contents of a --config file."""

    threshold: float | None = None
    thresholds: tuple[tuple[str, float], ...] = ()
    unknown: str | float | None = None
    events_only: tuple[str, ...] = ()
    events_ignore: tuple[str, ...] = ()


def _labels_list(value: Any, where: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(x, str) and x for x in value):
        raise UsageError(f"{where}: expected a list of label names, got {value!r}")
    return tuple(value)


def read_config(path: Path) -> DecideFile:
    """Read and check a --config file: JSON, or YAML (.yaml/.yml) when PyYAML is importable."""
    where = f"--config {path}"
    try:
        if not path.is_file():
            raise UsageError(f"{where}: no such file; expected a JSON file with {', '.join(CONFIG_KEYS)}")
        if path.stat().st_size > MAX_CONFIG_BYTES:
            raise UsageError(f"{where}: over {MAX_CONFIG_BYTES} bytes; this is not a config file")
        text = path.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise UsageError(f"{where}: cannot be read ({e}); check the path and permissions") from None
    if path.suffix.lower() in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError:
            raise UsageError(f"{where}: YAML needs PyYAML (`pip install pyyaml`), which the edge does not "
                             "install; or write the same keys as JSON") from None
        try:
            d = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise UsageError(f"{where}: not valid YAML ({' '.join(str(e).split())[:160]})") from None
    else:
        try:
            d = json.loads(text)
        except ValueError as e:
            raise UsageError(f"{where}: not valid JSON ({e})") from None
    if not isinstance(d, dict):
        raise UsageError(f"{where}: expected an object with keys {', '.join(CONFIG_KEYS)}")
    extra = [k for k in d if k not in CONFIG_KEYS]
    if extra:
        raise UsageError(f"{where}: unknown key {extra[0]!r}; expected {', '.join(CONFIG_KEYS)}")
    per_class = d.get("thresholds", {})
    if not isinstance(per_class, dict):
        raise UsageError(f"{where}: thresholds: expected an object of label: probability, got {per_class!r}")
    unknown = d.get("unknown")
    return DecideFile(
        threshold=None if d.get("threshold") is None else probability(d["threshold"], f"{where}: threshold"),
        thresholds=tuple((str(k), probability(v, f"{where}: thresholds.{k}")) for k, v in per_class.items()),
        unknown=None if unknown is None else parse_unknown(str(unknown) if not isinstance(unknown, str) else unknown),
        events_only=_labels_list(d.get("events_only", []), f"{where}: events_only"),
        events_ignore=_labels_list(d.get("events_ignore", []), f"{where}: events_ignore"))


def decide_options(threshold: Sequence[str] | None, unknown: str | None, config: Path | None,
                   events_only: Sequence[str] | None = None, events_ignore: Sequence[str] | None = None,
                   **smooth: Any) -> tuple[SmoothConfig, "EventsFilter"]:
    """Flags and the --config file merged (flags win) into the decision config and the events filter."""
    f = read_config(config) if config is not None else DecideFile()
    default, per_class = parse_thresholds(threshold or ())
    merged = dict(f.thresholds)
    merged.update(per_class)
    cfg = SmoothConfig(threshold=default if default is not None else (f.threshold or 0.0),
                       class_thresholds=tuple(merged.items()),
                       unknown=parse_unknown(unknown) if unknown is not None else f.unknown, **smooth)
    return cfg, EventsFilter(tuple(events_only or ()) or f.events_only, tuple(events_ignore or ()) or f.events_ignore)


@dataclass(frozen=True)
class EventsFilter:
    """Which label changes become `change` events (and --on-change runs).

    only: changes into or out of these labels are reported, others are not.
    ignore: a change *to* one of these labels is not reported; the next reported change names the last
    reported label as `previous` (humans -> uncertain -> humans reports nothing).
    Both name labels of the bundle, or "uncertain" / "unknown".
    """

    only: tuple[str, ...] = ()
    ignore: tuple[str, ...] = ()

    def check(self, labels: Sequence[str]) -> None:
        known = (*labels, UNCERTAIN, UNKNOWN)
        for flag, names in (("--events-only", self.only), ("--events-ignore", self.ignore)):
            for name in names:
                if name not in known:
                    raise UsageError(f"{flag} {name!r}: not a label of this bundle; expected one of "
                                     f"{', '.join(known)}")

    @property
    def active(self) -> bool:
        return bool(self.only or self.ignore)

    def reports(self, label: str) -> bool:
        """Whether a periodic `frame` event for a frame whose stable label is `label` is written."""
        return label not in self.ignore and (not self.only or label in self.only)


class ChangeReporter:
    """Tracks the last reported label and says whether a label change is reported, and with what previous."""

    def __init__(self, flt: EventsFilter):
        self.filter = flt
        self.reported: str | None = None

    def change(self, label: str) -> tuple[bool, str | None]:
        """(report it, previous reported label) for a change of the stable label to `label`."""
        f, previous = self.filter, self.reported
        if label in f.ignore or label == previous:
            return False, previous
        if f.only and label not in f.only and previous not in f.only:
            self.reported = label  # between labels nobody asked about: remembered, not reported
            return False, previous
        self.reported = label
        return True, previous
