"""sha256 for bundle and sample checks, without loading OpenSSL for it.

`hashlib` loads OpenSSL's libcrypto (`_hashlib`): about 3.5 MB of resident memory in a camera process that
needs no other OpenSSL (issue 14). CPython carries its own sha256 (`_sha256` up to 3.11, `_sha2` from
3.12), which gives the same digests; `hashlib` is the fallback where neither is built in."""

from __future__ import annotations

try:
    from _sha256 import sha256  # type: ignore[import-not-found]  # CPython <= 3.11
except ImportError:  # pragma: no cover - depends on the Python build
    try:
        from _sha2 import sha256  # type: ignore[import-not-found,no-redef]  # CPython >= 3.12
    except ImportError:
        from hashlib import sha256  # type: ignore[no-redef]

__all__ = ["sha256"]
