"""A Keras callback that reports each training step through `edgeclf.progress.Progress` (the CLI draws it;
Keras' own bars stay off)."""

from __future__ import annotations

from typing import Any

from edgeclf.progress import Progress


def epoch_progress(progress: Progress, what: str, epochs: int, steps: int) -> Any:
    """Reports `what: epoch E/epochs` with the steps done in it."""
    import keras

    class EpochProgress(keras.callbacks.Callback):
        epoch = 0

        def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
            self.epoch = epoch
            progress(f"{what}: epoch {epoch + 1}/{epochs}", 0, steps)

        def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
            progress(f"{what}: epoch {self.epoch + 1}/{epochs}", batch + 1, steps)

    return EpochProgress()
