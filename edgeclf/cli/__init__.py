"""The `edgeclf` command line: a thin layer over `edgeclf.train`, `edgeclf.convert` and `edgeclf.edge`.

Each command module imports its library lazily, so `edgeclf camera/classify/info` never import TensorFlow.
"""

from __future__ import annotations

from . import bench, convert, edge, evaluate, info, train  # noqa: F401  (registers the commands)
from ._app import app

__all__ = ["app", "main"]


def main() -> None:
    import sys

    from .quiet import filter_native_stderr, wants_verbose

    if not wants_verbose(sys.argv[1:]):
        filter_native_stderr()
        import warnings

        # Python warnings of the libraries under us (Keras' "The structure of `inputs` doesn't match", ...)
        # are not for a user to act on either; -v shows them.
        warnings.filterwarnings("ignore", module=r"(keras|tensorflow|tf_keras|absl|google|mediapipe)(\.|$)")
    from .lean import run

    run(sys.argv[1:])  # a plain `camera`/`classify` line runs (and exits) here, without pydantic (issue 14)
    app()
