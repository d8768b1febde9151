"""Layer randomness that a resumed run repeats: at each epoch's start every random layer (Dropout, noise) gets
a seed state that depends only on (--seed, the layer's position, the epoch).

Keras keeps a random layer's state in a `SeedGenerator` whose variable is not saved in a `.keras` file, so a run
resumed from its backup drew new dropout masks from an unseeded start: four resumes of one backup gave four
different epoch-3 losses. Shuffles and augmentation are keyed by (seed, epoch) already (`train.tfdata`); with
this, an epoch trained after `--resume` is the epoch an uninterrupted run trains.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def seed_generators(model: Any) -> list[Any]:
    """Every SeedGenerator of the model's layers, in layer order."""
    found, seen = [], set()
    for layer in model._flatten_layers(include_self=True, recursive=True):
        for sg in getattr(layer, "_seed_generators", []):
            if id(sg) not in seen:
                seen.add(id(sg))
                found.append(sg)
    return found


def reseed(model: Any, seed: int, epoch: int) -> None:
    for i, sg in enumerate(seed_generators(model)):
        state = np.array([(seed * 1_000_003 + i * 7_919 + 1) % 2**31, epoch * 2**20], dtype=sg.state.dtype)
        sg.state.assign(state)


def reseed_callback(seed: int) -> Any:
    """A Keras callback calling `reseed` at the start of every epoch."""
    import keras

    class Reseed(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
            reseed(self.model, seed, epoch)

    return Reseed()
