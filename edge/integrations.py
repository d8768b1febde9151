"""What the camera tells other systems, beside its events: label counts, --mqtt, --shadow and /metrics.

`Integrations` is the one object the frame loop calls per frame (`frame()`, a few dict updates and, on
every Nth frame with --shadow, one frame copy); /status, /metrics and the summary read from it. MQTT and
the shadow run in their own threads (edge/mqtt.py, edge/shadow.py) and cannot stop the loop.
"""

from __future__ import annotations

import collections
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from edgeclf import __version__
from edgeclf.edge import metrics_text
from edgeclf.edge.model import Classifier
from edgeclf.edge.shadow import Shadow, load_shadow

if TYPE_CHECKING:  # edge/mqtt.py (socket, paho) is imported only with --mqtt
    from edgeclf.edge.mqtt import MqttConfig, MqttPublisher


def _unknown_label() -> str | None:
    """The "unknown" answer's label, once the bundle's unknown threshold exists in edgeclf (issue 14 part 1)."""
    from edgeclf.edge import postprocess

    return getattr(postprocess, "UNKNOWN", None)


class Integrations:
    """Label counts for /metrics and the summary; the MQTT publisher and the shadow when asked for."""

    def __init__(self, clf: Classifier, emit: Callable[..., None], mqtt: MqttConfig | None = None,
                 shadow: Classifier | None = None, shadow_every: int = 10):
        self.clf = clf
        self.labels: collections.Counter[str] = collections.Counter()
        self.changes = 0
        self.info = _info(clf)
        self.mqtt: MqttPublisher | None = None
        if mqtt is not None:
            from edgeclf.edge.mqtt import MqttPublisher

            self.mqtt = MqttPublisher(mqtt, emit, name=f"edgeclf {mqtt.prefix}")
        self.shadow = Shadow(shadow, shadow_every, emit) if shadow is not None else None
        self._same_input = shadow is not None and clf.same_input(shadow)  # the shadow gets the model input
        self._closed = False

    @classmethod
    def open(cls, clf: Classifier, emit: Callable[..., None], mqtt: MqttConfig | None, shadow: Path | None,
             shadow_every: int, runtime: str | None, crop: str | None, quiet: bool) -> "Integrations":
        """Load the shadow bundle (refused in one line when it cannot run) and start the threads."""
        shadow_clf = load_shadow(shadow, runtime, 1, crop, quiet) if shadow is not None else None
        self = cls(clf, emit, mqtt, shadow_clf, shadow_every)
        if self.shadow is not None:
            self.shadow.start()
            emit("shadow_start", bundle=str(shadow_clf.bundle.path), sha256=shadow_clf.manifest.sha256,  # type: ignore[union-attr]
                 every=shadow_every, labels=list(shadow_clf.labels))  # type: ignore[union-attr]
        if self.mqtt is not None:
            self.mqtt.start()
        return self

    def frame(self, image: np.ndarray, probs: np.ndarray, label: str, score: float, smoothed: float, changed: bool,
              seq: int, fps: float, *, report: bool, previous: str | None, unknown_by: str | None,
              shown: bool) -> None:
        """After each frame's decision (the loop's thread). `report`/`previous`/`shown` are the events filter's
        verdict for this frame (--events-only/--events-ignore, edge/decide.py), which MQTT follows too."""
        self.labels[label] += 1
        if changed:
            self.changes += 1
        if self.shadow is not None:
            self.shadow.offer(image, probs, self.clf.labels, seq, self.clf.pre.out if self._same_input else None)
        if self.mqtt is not None:
            self.mqtt.frame(label, score, smoothed, seq, fps, report=report, previous=previous,
                            unknown_by=unknown_by, shown=shown)

    def use(self, clf: Classifier) -> None:
        """A reloaded bundle is the main one now (SIGHUP/--watch): /metrics names it, the shadow compares with it."""
        self.clf = clf
        self.info = _info(clf)
        self._same_input = self.shadow is not None and clf.same_input(self.shadow.clf)

    def status(self) -> dict[str, Any]:
        out: dict[str, Any] = {"labels": dict(self.labels)}
        if self.mqtt is not None:
            out["mqtt"] = dict(self.mqtt.stats)
        if self.shadow is not None:
            out["shadow"] = self.shadow.summary()
        return out

    def metrics(self, stats: Any, feed_stats: Any, events: dict[str, Any] | None) -> str:
        unknown = _unknown_label()
        return metrics_text.render(stats, feed_stats, self.info, dict(self.labels), self.changes,
                                   unknown=self.labels.get(unknown, 0) if unknown else None,
                                   mqtt=dict(self.mqtt.stats) if self.mqtt else None,
                                   shadow=dict(self.shadow.stats) if self.shadow else None, events=events)

    def finish(self, summary: dict[str, Any] | None) -> None:
        """Stop the shadow, publish the summary over MQTT and disconnect; add their figures to `summary`.
        Called again (or with None, on the way out after an error) it does nothing more."""
        if self._closed:
            return
        self._closed = True
        out: dict[str, Any] = {"labels": dict(self.labels)}
        if self.shadow is not None:
            self.shadow.close()
            out["shadow"] = self.shadow.summary()
        if summary is not None:
            summary.update(out)
        if self.mqtt is not None:
            self.mqtt.close(summary)
            if summary is not None:
                summary["mqtt"] = dict(self.mqtt.stats)

    def close(self) -> None:
        self.finish(None)


def _info(clf: Classifier) -> dict[str, str]:
    """The labels of /metrics' edgeclf_bundle_info: which bundle runs, its sha256, the versions."""
    m = clf.manifest
    return {"bundle": Path(clf.bundle.path).name, "sha256": m.sha256, "edgeclf_version": __version__,
            "bundle_edgeclf_version": m.edgeclf_version, "runtime": f"{clf.runtime.name} {clf.runtime.version}"}
