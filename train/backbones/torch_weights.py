"""Read a PyTorch checkpoint (`.pth`) into numpy arrays without importing torch and without running its code.

A `.pth` is a pickle, and unpickling runs whatever callables the file names: a weights file is untrusted
input. This reader's unpickler resolves only an allow-list of globals (`collections.OrderedDict`,
`torch._utils._rebuild_tensor_v2`/`_rebuild_tensor` and the typed storage classes), each mapped to a
stand-in of ours; any other global (`os.system`, `builtins.eval`, ...) is refused before anything is called.
Both layouts torch.save has written are read:

    zip (torch >= 1.6)  `<name>/data.pkl` + one `<name>/data/<key>` entry per storage
    legacy              magic number, protocol version, sys info, the object, the storage keys, then each
                        storage as an int64 element count and its raw bytes, in key order

Tensors are rebuilt from (storage, offset, size, stride) as read-only numpy arrays that own their data.
"""

from __future__ import annotations

import io
import math
import pickle
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, NamedTuple

import numpy as np

from edgeclf.errors import ModelError

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_LEGACY_PROTOCOL = 1001

# torch's typed storages and the numpy dtype each holds (bfloat16 has no numpy dtype: refused by name).
_STORAGE_DTYPES: Mapping[str, np.dtype] = {
    "FloatStorage": np.dtype("<f4"), "DoubleStorage": np.dtype("<f8"), "HalfStorage": np.dtype("<f2"),
    "LongStorage": np.dtype("<i8"), "IntStorage": np.dtype("<i4"), "ShortStorage": np.dtype("<i2"),
    "CharStorage": np.dtype("i1"), "ByteStorage": np.dtype("u1"), "BoolStorage": np.dtype("?"),
}


class _StorageType(NamedTuple):
    """Stand-in for a torch typed storage class: a tuple, so a pickle can neither call it nor set attributes."""

    name: str
    dtype: np.dtype


@dataclass
class _Storage:
    """One storage named by the pickle; its data is attached once read (legacy files store it after)."""

    key: str
    dtype: np.dtype
    numel: int
    data: np.ndarray | None = None


@dataclass(frozen=True)
class _TensorRef:
    storage: _Storage
    offset: int
    size: tuple[int, ...]
    stride: tuple[int, ...]


def _rebuild_tensor(storage: Any, storage_offset: Any, size: Any, stride: Any, *_rest: Any) -> _TensorRef:
    """Stand-in for torch._utils._rebuild_tensor(_v2): records where the tensor lies, reads nothing yet."""
    if not isinstance(storage, _Storage):
        raise pickle.UnpicklingError(f"a tensor's storage is a {type(storage).__name__}, not a storage record")
    ints = (storage_offset, *size, *stride)
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in ints) or len(size) != len(stride):
        raise pickle.UnpicklingError("a tensor's offset, size or stride is not a list of non-negative integers")
    return _TensorRef(storage, storage_offset, tuple(size), tuple(stride))


class _StateDict(dict):
    """What the pickle's OrderedDict becomes: a plain dict that tolerates torch's `_metadata` attribute."""


# (module, name) -> the stand-in the unpickler returns; everything else is refused.
_ALLOWED: Mapping[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): _StateDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    **{("torch", name): _StorageType(name, dtype) for name, dtype in _STORAGE_DTYPES.items()},
}


class _RestrictedUnpickler(pickle._Unpickler):  # type: ignore[name-defined,misc]
    """The pure-Python unpickler, so that BUILD (which sets attributes) can be limited like find_class."""

    def __init__(self, file: io.BufferedIOBase, storages: dict[str, _Storage],
                 load_zip_storage: Callable[[_Storage], None] | None) -> None:
        super().__init__(file)
        self._storages = storages
        self._load_zip_storage = load_zip_storage

    def find_class(self, module: str, name: str) -> Any:
        found = _ALLOWED.get((module, name))
        if found is None:
            raise pickle.UnpicklingError(f"it names {module}.{name}, which is not a tensor, storage or OrderedDict "
                                         f"(a weights file may only hold those)")
        return found

    def persistent_load(self, pid: Any) -> _Storage:
        # zip: ('storage', type, key, location, numel); legacy: the same plus view metadata (must be None)
        if not (isinstance(pid, tuple) and len(pid) in (5, 6) and pid[0] in ("storage", b"storage")):
            raise pickle.UnpicklingError(f"unexpected persistent id {str(pid)[:80]!r} (expected a storage)")
        _, stype, key, _location, numel, *view = pid
        if not isinstance(stype, _StorageType):
            raise pickle.UnpicklingError(f"storage type {stype!r} is not a known typed storage")
        if view and view[0] is not None:
            raise pickle.UnpicklingError("storage views (pre-1.0 torch files) are not supported")
        key = key.decode("ascii") if isinstance(key, bytes) else key
        if not isinstance(key, str) or not isinstance(numel, int) or numel < 0:
            raise pickle.UnpicklingError(f"storage record {str(pid)[:80]!r} has a bad key or element count")
        storage = self._storages.get(key)
        if storage is None:
            storage = self._storages[key] = _Storage(key, stype.dtype, numel)
            if self._load_zip_storage is not None:
                self._load_zip_storage(storage)
        elif storage.dtype != stype.dtype or storage.numel != numel:
            raise pickle.UnpicklingError(f"storage {key} is named twice with different types or sizes")
        return storage

    def _load_build(self) -> None:
        # torch pickles a state_dict's `_metadata` attribute with BUILD; that is the only BUILD a weights file
        # needs. It is dropped: no attribute of any object (our stand-ins included) is ever set from the file.
        self.stack.pop()
        if not isinstance(self.stack[-1], _StateDict):
            raise pickle.UnpicklingError(f"it sets attributes of a {type(self.stack[-1]).__name__} "
                                         f"(only an OrderedDict's may be set in a weights file)")

    dispatch = dict(pickle._Unpickler.dispatch)  # type: ignore[attr-defined]
    dispatch[pickle.BUILD[0]] = _load_build


def _materialize(ref: _TensorRef) -> np.ndarray:
    data = ref.storage.data
    if data is None:
        raise ModelError(f"storage {ref.storage.key} has no data")
    count = math.prod(ref.size)
    if count > data.size:
        raise ModelError(f"a tensor of {count} elements lies in storage {ref.storage.key} of {data.size}")
    if count:
        last = ref.offset + sum((n - 1) * s for n, s in zip(ref.size, ref.stride))
        if last >= data.size:
            raise ModelError(f"a tensor reaches element {last} of storage {ref.storage.key}, which has {data.size}")
    view = np.lib.stride_tricks.as_strided(data[ref.offset:] if count else data, shape=ref.size,
                                           strides=tuple(s * data.itemsize for s in ref.stride), writeable=False)
    out = np.array(view, dtype=data.dtype.newbyteorder("="), copy=True)
    out.setflags(write=False)
    return out


def _read_zip(path: Path, raw: bytes) -> tuple[Any, dict[str, _Storage]]:
    zf = zipfile.ZipFile(io.BytesIO(raw))
    pkls = [n for n in zf.namelist() if n.endswith("/data.pkl") and n.count("/") == 1]
    if len(pkls) != 1:
        raise ModelError(f"{path}: a zip checkpoint holds one <name>/data.pkl; found {len(pkls)}")
    root = pkls[0].rsplit("/", 1)[0]
    storages: dict[str, _Storage] = {}

    def load(storage: _Storage) -> None:
        try:
            blob = zf.read(f"{root}/data/{storage.key}")
        except KeyError:
            raise pickle.UnpicklingError(f"storage {storage.key} has no data entry in the archive") from None
        if len(blob) != storage.numel * storage.dtype.itemsize:
            raise pickle.UnpicklingError(f"storage {storage.key} holds {len(blob)} bytes, expected "
                                         f"{storage.numel} x {storage.dtype.itemsize}")
        storage.data = np.frombuffer(blob, dtype=storage.dtype)

    obj = _RestrictedUnpickler(io.BytesIO(zf.read(pkls[0])), storages, load).load()
    return obj, storages


def _read_legacy(raw: bytes) -> tuple[Any, dict[str, _Storage]]:
    f = io.BytesIO(raw)
    storages: dict[str, _Storage] = {}
    header = [_RestrictedUnpickler(f, storages, None).load() for _ in range(3)]
    if header[0] != _LEGACY_MAGIC or header[1] != _LEGACY_PROTOCOL:
        raise pickle.UnpicklingError("no torch.save magic number/protocol at the start")
    if isinstance(header[2], dict) and header[2].get("little_endian") is False:
        raise pickle.UnpicklingError("big-endian checkpoints are not supported")
    obj = _RestrictedUnpickler(f, storages, None).load()
    keys = _RestrictedUnpickler(f, storages, None).load()
    if not (isinstance(keys, list) and all(isinstance(k, str) for k in keys)) or set(keys) != set(storages):
        raise pickle.UnpicklingError("the storage key list does not match the storages the object names")
    for key in keys:
        storage = storages[key]
        head = f.read(8)
        if len(head) != 8:
            raise pickle.UnpicklingError(f"the file ends before storage {key}")
        (numel,) = struct.unpack("<q", head)
        if numel != storage.numel:
            raise pickle.UnpicklingError(f"storage {key} holds {numel} elements, the pickle says {storage.numel}")
        nbytes = numel * storage.dtype.itemsize
        blob = f.read(nbytes)
        if len(blob) != nbytes:
            raise pickle.UnpicklingError(f"the file ends inside storage {key} ({len(blob)} of {nbytes} bytes)")
        storage.data = np.frombuffer(blob, dtype=storage.dtype)
    if f.read(1):
        raise pickle.UnpicklingError("bytes follow the last storage")
    return obj, storages


def read_state_dict(path: str | Path) -> dict[str, np.ndarray]:
    """The tensors of a PyTorch state_dict file as {name: read-only numpy array}, in file order.

    Raises ModelError (one line naming the file) for a file that is not a torch checkpoint, is truncated or
    corrupt, names any callable outside the allow-list, or holds anything but a flat name -> tensor mapping.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise ModelError(f"cannot read weights file {path}: {e.strerror or e}") from None
    try:
        obj, _ = _read_zip(path, raw) if zipfile.is_zipfile(io.BytesIO(raw)) else _read_legacy(raw)
    except ModelError:
        raise
    except Exception as e:  # noqa: BLE001 - untrusted bytes: any failure of the reader is "not a weights file"
        raise ModelError(f"{path} is not a readable PyTorch weights file: {e}; "
                         f"expected a torch.save'd state_dict (zip or legacy format)") from None
    if not isinstance(obj, dict) or not all(isinstance(k, str) and isinstance(v, _TensorRef) for k, v in obj.items()):
        raise ModelError(f"{path} does not hold a state_dict (a mapping of names to tensors); "
                         f"save one with torch.save(model.state_dict(), path)")
    return {name: _materialize(ref) for name, ref in obj.items()}
