"""Multiply-accumulates per frame, read from a loaded interpreter's operators and tensor shapes.

Counts the layers that do the arithmetic (convolutions, depthwise convolutions, fully connected layers,
matrix multiplies). Element-wise ops, pooling and activations are not MACs and are left out, as every
published MAC count does. Works on any runtime (ai-edge-litert, tflite-runtime, tf.lite): no flatbuffer
parser needed.
"""

from __future__ import annotations

import logging
from math import prod
from typing import Any, Callable, Mapping, Sequence

log = logging.getLogger(__name__)

Shape = Sequence[int]


def _conv(ins: list[Shape], outs: list[Shape]) -> int:
    # filter [out_ch, kh, kw, in_ch]; output [n, oh, ow, out_ch]
    _, kh, kw, cin = ins[1]
    return prod(outs[0]) * kh * kw * cin


def _depthwise(ins: list[Shape], outs: list[Shape]) -> int:
    # filter [1, kh, kw, out_ch]: one kh*kw window per output element
    _, kh, kw, _ = ins[1]
    return prod(outs[0]) * kh * kw


def _fully_connected(ins: list[Shape], outs: list[Shape]) -> int:
    # weights [units, in]; every output element is a dot product of length `in`
    return prod(outs[0]) * ins[1][-1]


def _transpose_conv(ins: list[Shape], outs: list[Shape]) -> int:
    # inputs: output_shape, filter [out_ch, kh, kw, in_ch], input [n, h, w, in_ch]
    out_ch, kh, kw, _ = ins[1]
    return prod(ins[2]) * kh * kw * out_ch


def _batch_matmul(ins: list[Shape], outs: list[Shape]) -> int:
    # [.., m, k] x [.., k, n] (adj flags only move k): k is the dimension the output does not have
    a = ins[0]
    k = a[-1] if a[-2] == outs[0][-2] else a[-2]
    return prod(outs[0]) * k


MAC_RULES: Mapping[str, Callable[[list[Shape], list[Shape]], int]] = {
    "CONV_2D": _conv,
    "DEPTHWISE_CONV_2D": _depthwise,
    "FULLY_CONNECTED": _fully_connected,
    "TRANSPOSE_CONV": _transpose_conv,
    "BATCH_MATMUL": _batch_matmul,
}


def count_macs(interpreter: Any) -> int | None:
    """MACs of one invoke of an allocated interpreter, or None when the runtime hides its operators.

    Delegate nodes (XNNPACK) are listed beside the original operators; only the originals are counted.
    """
    try:
        ops = interpreter._get_ops_details()  # experimental API, present in every runtime edgeclf supports
        shapes = {int(t["index"]): [int(d) for d in t["shape"]] for t in interpreter.get_tensor_details()}
    except (AttributeError, ValueError, RuntimeError) as e:
        log.debug("cannot read operators for MAC count: %s", e)
        return None
    total = 0
    for op in ops:
        rule = MAC_RULES.get(op["op_name"])
        if rule is None:
            continue
        ins = [shapes.get(int(i), []) for i in op["inputs"]]
        outs = [shapes.get(int(i), []) for i in op["outputs"]]
        try:
            total += int(rule(ins, outs))
        except (IndexError, ValueError, TypeError):
            log.debug("op %s: unexpected shapes %s -> %s; not counted", op["op_name"], ins, outs)
    return total
