"""Find the demo data set: --data, $EDGECLF_DATA, the local cache, or the official download (sha256-checked).

Only the end-to-end demo uses this; `edgeclf train` always takes an explicit folder.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

from .errors import DataError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RemoteDataset:
    name: str
    url: str
    sha256: str
    size_bytes: int
    classes: tuple[str, ...]


# The checksum and size are those TensorFlow Datasets records for this URL (url_checksums/horses_or_humans.txt).
HORSE_OR_HUMAN = RemoteDataset(
    name="horse-or-human",
    url="https://storage.googleapis.com/download.tensorflow.org/data/horse-or-human.zip",
    sha256="e2e6f70d3d549c5dd10a57165e55af253ee66ad750403f95c0fb76bb943633a9",
    size_bytes=149_574_867,
    classes=("horses", "humans"),
)

MAX_UNPACKED_BYTES = 2 * 1024**3  # refuse archives that would unpack past this (zip bombs)
COMPLETE_MARKER = ".edgeclf-complete"


def cache_root() -> Path:
    env = os.environ.get("EDGECLF_CACHE")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "edgeclf"


def _check_folder(path: Path, classes: tuple[str, ...], where: str) -> Path:
    if not path.is_dir():
        raise DataError(f"{where} {path} is not a folder; expected one sub-folder per class ({', '.join(classes)})")
    missing = [c for c in classes if not (path / c).is_dir()]
    if missing:
        raise DataError(f"{where} {path} has no sub-folder(s) {', '.join(missing)}; expected one sub-folder per class")
    return path


def resolve_data(data: str | os.PathLike[str] | None = None, dataset: RemoteDataset = HORSE_OR_HUMAN,
                 url: str | None = None, cache: Path | None = None, timeout: float = 30.0) -> Path:
    """The folder to train on, looked for in order: `data`, $EDGECLF_DATA, the cache, the download."""
    if data:
        return _check_folder(Path(data), dataset.classes, "--data")
    env = os.environ.get("EDGECLF_DATA")
    if env:
        return _check_folder(Path(env), dataset.classes, "EDGECLF_DATA")
    target = (cache or cache_root()) / dataset.name / "train"
    if (target / COMPLETE_MARKER).exists():
        log.info("using cached %s at %s", dataset.name, target)
        return target
    return download(dataset, target, url or os.environ.get("EDGECLF_DATA_URL") or dataset.url, timeout)


def download(dataset: RemoteDataset, target: Path, url: str, timeout: float = 30.0) -> Path:
    """Fetch the archive, check its sha256, unpack it beside `target` and rename it into place."""
    target.parent.mkdir(parents=True, exist_ok=True)
    log.info("downloading %s from %s", dataset.name, url)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".download-") as tmp:
        archive = Path(tmp) / "data.zip"
        digest = hashlib.sha256()
        try:
            with urllib.request.urlopen(url, timeout=timeout) as resp, open(archive, "wb") as out:
                while chunk := resp.read(1 << 20):
                    digest.update(chunk)
                    out.write(chunk)
        except (urllib.error.URLError, OSError) as e:
            reason = getattr(e, "reason", e)
            raise DataError(f"could not download {dataset.name} from {url} ({reason}); offline? point edgeclf at a "
                            f"folder with one sub-folder per class: --data DIR or EDGECLF_DATA=DIR") from None
        if digest.hexdigest() != dataset.sha256:
            raise DataError(f"download of {dataset.name} from {url} has sha256 {digest.hexdigest()[:12]}…, expected "
                            f"{dataset.sha256[:12]}…; the file is damaged or not the official archive; retry, or "
                            "use --data DIR")
        unpacked = Path(tmp) / "unpacked"
        _safe_extract(archive, unpacked)
        _check_folder(unpacked, dataset.classes, "downloaded archive")
        (unpacked / COMPLETE_MARKER).write_text(dataset.sha256 + "\n")
        if target.exists():
            shutil.rmtree(target)
        os.replace(unpacked, target)
    return target


def _safe_extract(archive: Path, dest: Path) -> None:
    try:
        zf = zipfile.ZipFile(archive)
    except zipfile.BadZipFile:
        raise DataError(f"{archive.name}: not a zip archive; retry the download or use --data DIR") from None
    with zf:
        total = 0
        root = dest.resolve()
        for info in zf.infolist():
            total += info.file_size
            out = (dest / info.filename).resolve()
            if not str(out).startswith(str(root)) or info.filename.startswith("/"):
                raise DataError(f"archive entry {info.filename!r} points outside the folder; refusing to unpack")
            if total > MAX_UNPACKED_BYTES:
                raise DataError(f"archive unpacks to more than {MAX_UNPACKED_BYTES:,} bytes; refusing (zip bomb?)")
        zf.extractall(dest)
