"""Keras callbacks that make a run safe to kill: NaN guard, best model, backups, early stopping.

Everything is written atomically (temp file + rename). The backup of epoch k is written under a new
name before the state file points at it, so after a SIGKILL the state names a complete backup and the
epoch it holds.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from edgeclf.atomic import atomic_path, write_json, write_text
from edgeclf.errors import RunError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Best:
    accuracy: float
    loss: float
    epoch: int  # 1-based

    def beaten_by(self, accuracy: float, loss: float, select: str = "accuracy") -> bool:
        """select=accuracy: higher validation accuracy wins, on a tie lower loss; select=loss: lower loss wins;
        select=last: every epoch wins (the final weights of the schedule are kept; no early stop).

        On a few validation subjects accuracy moves in steps of a whole subject and swings from epoch to
        epoch; the (label-smoothed) loss moves smoothly, so it picks a steadier epoch."""
        if select == "last":
            return True
        if select == "loss":
            return loss < self.loss
        return accuracy > self.accuracy or (accuracy == self.accuracy and loss < self.loss)


@dataclass(frozen=True)
class SizeState:
    """Progress of one size, saved after every epoch (state/<size>/state.json)."""

    size: int
    epoch: int = 0  # epochs completed and held by `backup`
    backup: str | None = None  # file name in the state folder
    best: Best | None = None
    wait: int = 0  # epochs since the best, for early stopping
    history: tuple[dict[str, float], ...] = ()
    status: str = "running"  # running, done, diverged
    stopped: str | None = None  # epochs, early, nan
    diverged_at: str | None = None
    result: dict[str, Any] = field(default_factory=dict)  # held-out metrics once done

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["history"] = list(self.history)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "SizeState":
        best = Best(**d["best"]) if d.get("best") else None
        return cls(**{**d, "best": best, "history": tuple(d.get("history", ()))})


def read_state(path: Path, size: int) -> SizeState:
    if not path.exists():
        return SizeState(size)
    try:
        return SizeState.from_dict(json.loads(path.read_text("utf-8")))
    except (ValueError, TypeError, KeyError) as e:
        raise RunError(f"{path}: damaged training state ({e!r}); start a new run") from None


def history_csv(rows: tuple[dict[str, float], ...]) -> str:
    keys: list[str] = []
    for r in rows:
        keys += [k for k in r if k not in keys]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=keys, lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


# A mean cross-entropy this large means the weights have blown up (a sane classifier stays below ~30).
DIVERGED_LOSS = 1e4


def _bad_loss(logs: dict[str, Any], keys: tuple[str, ...]) -> float | None:
    """The first loss in `logs` that is NaN, inf or past DIVERGED_LOSS, else None."""
    for k in keys:
        if k in logs:
            v = float(logs[k])
            if not math.isfinite(v) or v > DIVERGED_LOSS:
                return v
    return None


class EpochKeeper:
    """Builds the Keras callback for one size; `state` holds the progress after fit returns."""

    def __init__(self, *, size: int, state: SizeState, state_dir: Path, best_path: Path, history_path: Path,
                 inference_model: Any, patience: int, epochs: int, n_train: int, log_epochs: bool,
                 select: str = "accuracy", backup_every: float = 0.0):
        import keras

        keeper = self

        class _Callback(keras.callbacks.Callback):
            def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
                keeper._t0 = keeper._t_train = time.perf_counter()

            def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
                keeper._t_train = time.perf_counter()
                bad = _bad_loss(logs or {}, ("loss",))
                if bad is not None:
                    keeper._diverged(self.model, f"loss {bad:g} at epoch {keeper._epoch + 1} batch {batch + 1}")

            def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
                keeper._epoch_end(self.model, epoch, dict(logs or {}))

        self.callback = _Callback()
        self.size, self.state, self.state_dir = size, state, state_dir
        self.best_path, self.history_path, self.inference_model = best_path, history_path, inference_model
        self.patience, self.epochs, self.n_train, self.log_epochs = patience, epochs, n_train, log_epochs
        self.select = select
        self.backup_every = backup_every
        self._epoch = state.epoch
        self._t0 = self._t_train = time.perf_counter()
        self._saved = state  # what state.json holds: the epoch its backup holds, the best the best file holds
        self._saved_at = time.monotonic()
        self._best_weights: list[Any] | None = None  # the best epoch's weights while not yet written

    @property
    def state_path(self) -> Path:
        return self.state_dir / "state.json"

    def _diverged(self, model: Any, where: str) -> None:
        model.stop_training = True
        if self.state.status != "diverged":
            # Back to what is on disk (epochs since the last backup are lost), keeping a better model not yet written.
            best = self._saved.best
            if self._best_weights is not None:
                self._write_best()
                best = self.state.best
            self.state = replace(self._saved, best=best, status="diverged", stopped="nan", diverged_at=where)
            self._save_state()
            self._saved = self.state

    def _save_state(self) -> None:
        try:
            write_json(self.state_path, self.state.to_dict())
        except OSError as e:
            raise RunError(f"{self.state_path}: cannot write the training state ({e.strerror}); "
                           "free disk space, then --resume this run") from None

    def _save_model(self, model: Any, path: Path) -> None:
        try:
            with atomic_path(path) as tmp:
                model.save(tmp)
        except OSError as e:
            raise RunError(f"{path}: cannot write the model ({e.strerror}); free disk space, then --resume "
                           "this run") from None

    def flush(self, model: Any) -> None:
        """Write what the epochs since the last backup changed: the best model (if a newer one), a backup of
        `model` (weights and optimizer) holding the last epoch, then the state naming both, then the history.
        Called after an epoch once --backup-every seconds have passed, at the last epoch, at an early stop and
        at the end of each phase; a kill in between resumes from the last backup and repeats those epochs."""
        if self.state == self._saved:
            return
        if self._best_weights is not None:
            self._write_best()
        backup = f"backup-{self.state.epoch}.keras"
        self._save_model(model, self.state_dir / backup)
        old = self._saved.backup
        self.state = replace(self.state, backup=backup)
        self._save_state()
        self._saved, self._saved_at = self.state, time.monotonic()
        if old and old != backup:
            (self.state_dir / old).unlink(missing_ok=True)
        try:
            write_text(self.history_path, history_csv(self.state.history))
        except OSError as e:
            raise RunError(f"{self.history_path}: cannot write ({e.strerror}); free disk space, then --resume") from None

    def _write_best(self) -> None:
        """The best model file from the weights kept at its epoch; the live weights (perhaps of a later epoch,
        or diverged) are put back after."""
        assert self._best_weights is not None
        live = self.inference_model.get_weights()
        try:
            self.inference_model.set_weights(self._best_weights)
            self._save_model(self.inference_model, self.best_path)
        finally:
            self.inference_model.set_weights(live)
        self._best_weights = None

    def _epoch_end(self, model: Any, epoch: int, logs: dict[str, Any]) -> None:
        self._epoch = epoch + 1
        bad = _bad_loss(logs, ("loss", "val_loss"))
        if self.state.status == "diverged" or bad is not None:
            self._diverged(model, self.state.diverged_at or f"loss {bad:g} at epoch {epoch + 1} (validation)")
            return  # nothing from this epoch is kept: the best model and the backup stay as they were
        train_s = max(self._t_train - self._t0, 1e-9)
        row = {"epoch": epoch + 1, **{k: float(v) for k, v in logs.items()},
               "seconds": round(time.perf_counter() - self._t0, 3), "train_img_s": round(self.n_train / train_s, 1)}
        acc, loss = float(logs["val_accuracy"]), float(logs["val_loss"])
        best, wait = self.state.best, self.state.wait
        improved = best is None or best.beaten_by(acc, loss, self.select)
        if improved:
            self._best_weights = self.inference_model.get_weights()  # written with the next backup
            best, wait = Best(acc, loss, epoch + 1), 0
        else:
            wait += 1
        stop = wait >= self.patience and epoch + 1 < self.epochs and self.select != "last"
        self.state = replace(self.state, epoch=epoch + 1, best=best, wait=wait,
                             history=self.state.history + (row,), stopped="early" if stop else None)
        if stop or epoch + 1 >= self.epochs or time.monotonic() - self._saved_at >= self.backup_every:
            self.flush(model)
        if self.log_epochs:
            log.info("%d px  epoch %d/%d  loss %.4f acc %.4f | val_loss %.4f val_acc %.4f | %.1fs %.0f img/s%s",
                     self.size, epoch + 1, self.epochs, logs.get("loss", float("nan")), logs.get("accuracy", float("nan")),
                     loss, acc, row["seconds"], row["train_img_s"], "  best" if improved else "")
        if stop:
            log.info("%d px  early stop: no better val_%s for %d epochs (best %.4f at epoch %d)",
                     self.size, self.select, self.patience, best.accuracy if self.select == "accuracy" else best.loss,
                     best.epoch)
            model.stop_training = True


def precise_bn(model: Any, batches: Any) -> Any:
    """A callback that, before each validation, sets every BatchNorm's moving statistics to the exact
    average over `batches` (training images, current weights).

    Keras' moving averages lag behind weights that move fast (and start from mean 0, variance 1), so a
    model that does well in training mode can predict one class in inference mode; recomputing the
    statistics ("precise BN") removes that gap. The saved best model carries these statistics.
    """
    import keras
    import tensorflow as tf

    from edgeclf.train.recipe import walk

    # Nested models (a pretrained backbone) included; frozen BatchNorm layers keep their (ImageNet) statistics.
    bns = [layer for layer in walk(model)[1:] if isinstance(layer, keras.layers.BatchNormalization) and layer.trainable]
    momentum = tf.Variable(0.0, trainable=False, dtype=tf.float32)
    forward = tf.function(lambda x: model(x, training=True))  # traced once, reads `momentum` each call

    class _PreciseBN(keras.callbacks.Callback):
        def on_test_begin(self, logs: Any = None) -> None:
            if not bns:
                return
            saved = [layer.momentum for layer in bns]
            try:
                for layer in bns:
                    layer.momentum = momentum
                for k, (x, _) in enumerate(batches):
                    momentum.assign(k / (k + 1.0))  # running mean over batches: the first one replaces
                    forward(x)
            finally:
                for layer, m in zip(bns, saved):
                    layer.momentum = m

    return _PreciseBN()
