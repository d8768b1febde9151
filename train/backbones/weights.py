"""`--weights imagenet|none|FILE` for a pretrained --arch: resolved to a file (or a loader) before any run directory exists.

    resolve("mobilenetv3-small", "imagenet")   the Keras no-top .h5 in Keras' cache (downloaded once), or UsageError
    resolve("mobilenetv2", "/x/w.weights.h5")  that file, once it loaded into a throw-away build of the backbone
    load_into(backbone, model, resolved)        at build time: the weights into a fresh `Backbone.build` result

The ImageNet download is edgeclf's own (a timeout, the md5 Keras records, an atomic write into Keras' cache
folder `$KERAS_HOME/models`, else `~/.keras/models`): Keras' `get_file` has no timeout and would hang on a
network that drops packets. Offline, one line names the URL and how to pass the file fetched elsewhere.
"""

from __future__ import annotations

import hashlib
import os
import urllib.request
from pathlib import Path
from typing import Any

from edgeclf.atomic import atomic_path
from edgeclf.errors import UsageError
from edgeclf.train.backbones import BACKBONES, Backbone, KerasFile, Loader

IMAGENET = "imagenet"
NONE = "none"
TIMEOUT = 30.0  # seconds without a byte before the download counts as failed
# What `resolve` returns for a Loader backbone with --weights imagenet: the loader runs at build time.
FROM_LOADER = "imagenet:loader"


def keras_cache_dir() -> Path:
    """Where Keras keeps downloaded application weights: $KERAS_HOME/models, else ~/.keras/models."""
    return Path(os.environ.get("KERAS_HOME") or Path.home() / ".keras") / "models"


def imagenet_command(backbone: Backbone) -> str:
    """The command a user runs on a machine with internet to fetch the ImageNet file for --weights FILE."""
    src = backbone.imagenet
    if isinstance(src, KerasFile):
        return f"curl -fLO {src.url}"
    return src.summary


def _md5(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _download(backbone: Backbone, src: KerasFile) -> Path:
    target = keras_cache_dir() / src.file_name
    if target.is_file() and (src.md5 is None or _md5(target) == src.md5):
        return target
    fix = (f"on a machine with internet run `{imagenet_command(backbone)}`, copy the file here and pass "
           f"--weights {src.file_name} (or put it in {target.parent})")
    try:
        with urllib.request.urlopen(src.url, timeout=TIMEOUT) as resp, atomic_path(target) as tmp:
            with open(tmp, "wb") as fh:
                for chunk in iter(lambda: resp.read(1 << 20), b""):
                    fh.write(chunk)
            if src.md5 is not None and _md5(tmp) != src.md5:
                raise UsageError(f"--weights imagenet: {src.url} arrived damaged (md5 differs from Keras' record); "
                                 f"try again, or {fix}")
    except OSError as e:  # URLError, timeouts, refused connections, a read-only cache folder
        reason = getattr(e, "reason", None) or e.strerror or e
        raise UsageError(f"--weights imagenet: cannot download the {backbone.name} ImageNet weights ({reason}; "
                         f"no network?); {fix}") from None
    return target


def _check_file(backbone: Backbone, path: Path) -> None:
    """Load the file into a small build of the backbone: a wrong file fails here, before any run directory."""
    if not path.is_file():
        raise UsageError(f"--weights {path}: no such file; expected imagenet, none, or a weights file of {backbone.name} "
                         f"(e.g. from `{imagenet_command(backbone)}`)")
    if not path.name.endswith(".h5"):
        raise UsageError(f"--weights {path}: expected an HDF5 weights file (.h5: Keras' ImageNet file, or a "
                         f".weights.h5 from model.save_weights) of {backbone.name}")
    model = backbone.build(max(backbone.min_size, 64))
    try:
        backbone.load(model, str(path))
    except Exception as e:  # Keras: ValueError/KeyError/OSError with long texts
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:160]
        raise UsageError(f"--weights {path}: not weights of {backbone.name} ({first}); expected Keras' ImageNet file "
                         f"(`{imagenet_command(backbone)}`) or a .weights.h5 saved from the same backbone") from None
    del model


def resolve(arch: str, weights: str) -> str | None:
    """The weights source of a pretrained --arch as build time needs it: a file path, FROM_LOADER, or None."""
    backbone = BACKBONES[arch]
    if weights == NONE:
        return None
    if weights == IMAGENET:
        src = backbone.imagenet
        if isinstance(src, Loader):
            return FROM_LOADER
        return str(_download(backbone, src))
    path = Path(weights).expanduser().resolve()
    _check_file(backbone, path)
    return str(path)


def load_into(backbone: Backbone, model: Any, resolved: str | None) -> None:
    """Weights into a fresh `backbone.build(...)` result, from what `resolve` returned."""
    if resolved is None:
        return
    src = backbone.imagenet
    if resolved == FROM_LOADER:
        assert isinstance(src, Loader)
        src.load(model)
    else:
        backbone.load(model, resolved)
