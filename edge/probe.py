"""Child-process half of `edgeclf.edge.runtime.probe_model`: load model bytes from stdin, invoke once.

Run as `python -m edgeclf.edge.probe RUNTIME`. Prints one JSON line: {"ok": true, "inputs": [...],
"outputs": [...]} or {"ok": false, "error": "..."}. If the native loader crashes, the parent sees the
signal instead. Address space is capped so that a damaged model cannot make it allocate without bound.
"""

from __future__ import annotations

import json
import sys


def _limit_memory(model_size: int) -> None:
    try:
        import resource

        cap = 4 * 1024**3 + 16 * model_size
        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        if hard == resource.RLIM_INFINITY or hard > cap:
            resource.setrlimit(resource.RLIMIT_AS, (cap, hard if hard != resource.RLIM_INFINITY else cap))
    except (ImportError, ValueError, OSError):
        pass


def _describe(details: list[dict]) -> list[dict]:
    import numpy as np

    return [{"shape": [int(v) for v in d["shape"]], "dtype": np.dtype(d["dtype"]).name,
             "quantization": [float(d["quantization"][0]), int(d["quantization"][1])]} for d in details]


def main(argv: list[str]) -> int:
    data = sys.stdin.buffer.read()
    _limit_memory(len(data))
    try:
        import numpy as np

        from edgeclf.edge.runtime import find_runtime

        rt = find_runtime(argv[0] if argv else None)
        it = rt.interpreter_class(model_content=data, num_threads=1)
        it.allocate_tensors()
        for d in it.get_input_details():
            it.set_tensor(d["index"], np.zeros(d["shape"], d["dtype"]))
        it.invoke()
        out = {"ok": True, "inputs": _describe(it.get_input_details()), "outputs": _describe(it.get_output_details())}
    except Exception as e:  # the parent turns this into one ModelError line
        msg = " ".join(str(e).split())[:300] or type(e).__name__
        out = {"ok": False, "error": msg}
    print(json.dumps(out), flush=True)
    return 0 if out["ok"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
