"""The demo's data lookup: explicit folder, env var, cache, and a sha256-checked download from loopback."""

from __future__ import annotations

import hashlib
import http.server
import threading
import zipfile
from dataclasses import replace
from pathlib import Path

import pytest

from edgeclf.datasets import COMPLETE_MARKER, HORSE_OR_HUMAN, resolve_data
from edgeclf.errors import DataError


@pytest.fixture()
def archive(tmp_path: Path, shared_data: Path) -> Path:
    """A zip laid out like the official one (horses/, humans/ at the top), built from a few shared files."""
    z = tmp_path / "srv" / "horse-or-human.zip"
    z.parent.mkdir()
    with zipfile.ZipFile(z, "w") as zf:
        for cls in ("horses", "humans"):
            for f in sorted((shared_data / cls).glob("*.png"))[:3]:
                zf.write(f, f"{cls}/{f.name}")
    return z


@pytest.fixture()
def server(archive: Path):
    handler = lambda *a, **k: http.server.SimpleHTTPRequestHandler(*a, directory=str(archive.parent), **k)  # noqa: E731
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.RequestHandlerClass.log_message = lambda *a: None
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/{archive.name}"
    httpd.shutdown()
    httpd.server_close()


def test_download_checks_sha256_and_caches(tmp_path: Path, archive: Path, server: str, monkeypatch) -> None:
    monkeypatch.delenv("EDGECLF_DATA", raising=False)
    ds = replace(HORSE_OR_HUMAN, sha256=hashlib.sha256(archive.read_bytes()).hexdigest())
    cache = tmp_path / "cache"
    got = resolve_data(None, ds, url=server, cache=cache)
    assert sorted(p.name for p in (got / "humans").iterdir()) == sorted(f.split("/")[1] for f in zipfile.ZipFile(archive).namelist() if f.startswith("humans/"))
    assert (got / COMPLETE_MARKER).exists()
    # second call is served by the cache: the URL is never touched
    assert resolve_data(None, ds, url="http://127.0.0.1:9/unreachable", cache=cache) == got


def test_wrong_sha256_refused_and_nothing_cached(tmp_path: Path, server: str, monkeypatch) -> None:
    monkeypatch.delenv("EDGECLF_DATA", raising=False)
    cache = tmp_path / "cache"
    with pytest.raises(DataError, match="sha256 .* expected e2e6f70d3d54"):
        resolve_data(None, HORSE_OR_HUMAN, url=server, cache=cache)
    assert not (cache / "horse-or-human" / "train").exists()
    assert list((cache / "horse-or-human").iterdir()) == []


def test_offline_says_how_to_point_at_a_folder(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("EDGECLF_DATA", raising=False)
    with pytest.raises(DataError, match="--data DIR or EDGECLF_DATA=DIR"):
        resolve_data(None, HORSE_OR_HUMAN, url="http://127.0.0.1:9/x.zip", cache=tmp_path, timeout=5)


def test_explicit_and_env_folders(tmp_path: Path, shared_data: Path, monkeypatch) -> None:
    assert resolve_data(shared_data) == shared_data
    monkeypatch.setenv("EDGECLF_DATA", str(shared_data))
    assert resolve_data(None, cache=tmp_path) == shared_data
    with pytest.raises(DataError, match="no sub-folder"):
        resolve_data(tmp_path)
