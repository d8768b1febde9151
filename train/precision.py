"""`--precision`: the dtype the model computes in while it trains; what is saved stays float32.

    choose(precision, arch, size)  -> Precision: the Keras policy and why it was chosen
    training_model(policy)          context in which `build_model` builds a model computing in `policy`
    saved_as_float32(model)         what the run saves: the same weights in a float32 model

`auto` uses what was measured faster (benchmarks/train_step.py, the table in docs/training.md): mixed
bfloat16 on a CPU with AVX-512 BF16 or AMX for the (arch, size) pairs where it beat float32 here, mixed
float16 with loss scaling on a CUDA GPU (untested here: no GPU), float32 elsewhere. Variables are float32
under every policy; the head (the `prob` layer: logits and softmax/sigmoid) and the loss compute in
float32. The best model is saved with float32 layers, so `convert` sees exactly what float32 training gives.
"""

from __future__ import annotations

import contextlib
import functools
from dataclasses import dataclass
from typing import Any, Iterator

PRECISIONS = ("auto", "float32", "bfloat16", "float16")
POLICIES = {"float32": "float32", "bfloat16": "mixed_bfloat16", "float16": "mixed_float16"}
HEAD_LAYER = "prob"  # train.archs._head's output layer: kept float32
BF16_FLAGS = ("amx_bf16", "avx512_bf16")

# (arch, size) where mixed bfloat16 trained measurably faster than float32 on an AVX-512 BF16 CPU
# (benchmarks/train_step.py, docs/training.md). Other sizes take the nearest measured size of the arch;
# an arch not listed trains in float32.
BF16_MEASURED: dict[str, dict[int, bool]] = {
    "seed": {150: True, 300: True},  # 2.8x, 2.5x
    "edge": {150: True, 300: False},  # 1.6x (noise +-33 %); 1.1x within the noise (+-24 %): float32
    "efficientnet-lite0": {150: False, 300: False},  # head 1.0x / 0.8x, fine-tuning 0.65x / 0.9x
}


@dataclass(frozen=True)
class Precision:
    policy: str  # a Keras dtype policy name
    why: str


def policy_name(precision: str) -> str:
    return POLICIES[precision]


@functools.lru_cache(maxsize=1)
def cpu_bf16() -> str:
    """The bfloat16 instruction sets this CPU has ('amx_bf16 avx512_bf16'), '' when none (or not Linux)."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return " ".join(f for f in BF16_FLAGS if f in flags)
    except OSError:
        pass
    return ""


def _gpu() -> bool:
    import tensorflow as tf

    return bool(tf.config.list_physical_devices("GPU"))


def _bf16_faster(arch: str, size: int) -> bool | None:
    measured = BF16_MEASURED.get(arch)
    if not measured:
        return None
    nearest = min(measured, key=lambda s: (abs(s - size), s))
    return measured[nearest]


def choose(precision: str, arch: str, size: int) -> Precision:
    """The policy `--precision` means for this net and input size on this machine."""
    if precision != "auto":
        return Precision(POLICIES[precision], f"--precision {precision}")
    if _gpu():  # GPU-only branch, untested here
        return Precision("mixed_float16", "auto: a GPU is visible (float16 with loss scaling)")
    bf16 = cpu_bf16()
    if not bf16:
        return Precision("float32", "auto: this CPU has no bfloat16 instructions")
    faster = _bf16_faster(arch, size)
    if faster is None:
        return Precision("float32", f"auto: bfloat16 not measured for --arch {arch}")
    if not faster:
        return Precision("float32", f"auto: bfloat16 measured slower than float32 for {arch} near {size} px")
    return Precision("mixed_bfloat16", f"auto: {bf16} on this CPU, measured faster for {arch} near {size} px")


@contextlib.contextmanager
def training_model(policy: str) -> Iterator[None]:
    """Layers built inside compute in `policy` (variables float32); call `float32_head` on the model after."""
    import keras

    before = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(before)


def float32_head(model: Any) -> Any:
    """The output layer computes in float32 (Keras casts its input): logits and probabilities at full width."""
    if model.dtype_policy.name != "float32":
        model.get_layer(HEAD_LAYER).dtype_policy = "float32"
    return model


def _float32_config(node: Any) -> Any:
    """A serialized model with every mixed dtype policy replaced by float32."""
    if isinstance(node, dict):
        if node.get("class_name") in ("DTypePolicy", "FloatDTypePolicy") and isinstance(node.get("config"), dict):
            name = node["config"].get("name", "")
            if isinstance(name, str) and name.startswith("mixed_"):
                return {**node, "config": {**node["config"], "name": "float32"}}
        return {k: _float32_config(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_float32_config(v) for v in node]
    return node


def float32_copy(model: Any) -> Any:
    """The same architecture and weights with float32 layers throughout."""
    import keras

    twin = keras.saving.deserialize_keras_object(_float32_config(keras.saving.serialize_keras_object(model)))
    twin.set_weights(model.get_weights())
    return twin


class _Float32Saver:
    """Stands in for the model where `.save` writes the float32 copy of its current weights; weights pass through."""

    def __init__(self, model: Any):
        self._model = model
        self._twin: Any = None

    def save(self, path: Any) -> None:
        if self._twin is None:
            self._twin = float32_copy(self._model)
        else:
            self._twin.set_weights(self._model.get_weights())
        self._twin.save(path)

    def get_weights(self) -> list[Any]:
        return self._model.get_weights()

    def set_weights(self, weights: list[Any]) -> None:
        self._model.set_weights(weights)


def saved_as_float32(model: Any) -> Any:
    """`model` itself when it is float32; else an object whose `.save(path)` writes a float32 copy."""
    if all(layer.dtype_policy.name == "float32" for layer in _layers(model)):
        return model
    return _Float32Saver(model)


def _layers(model: Any) -> list[Any]:
    out = []
    for layer in model.layers:
        out.append(layer)
        if getattr(layer, "layers", None):
            out += _layers(layer)
    return out
