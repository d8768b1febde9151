"""Drawing shared by the reports of `train`, `eval` and `bench`, on an axis the caller made.

matplotlib is the caller's (desktop) import; nothing here imports it, so the core stays Pi-light.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np


def draw_confusion(ax: Any, confusion: Sequence[Sequence[int]], labels: Sequence[str], title: str) -> None:
    """Counts in the cells, rows = true class, columns = predicted."""
    cm = np.asarray(confusion)
    ax.imshow(cm, cmap="Blues")
    for (i, j), v in np.ndenumerate(cm):
        ax.text(j, i, str(v), ha="center", va="center", color="white" if v > cm.max() / 2 else "black")
    ax.set_xticks(range(len(labels)), labels, rotation=30, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
