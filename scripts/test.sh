#!/usr/bin/env bash
# Run the whole test suite on a fresh machine: builds .venv (TensorFlow + ai-edge-litert) and
# .venv-tflite (tflite-runtime 2.14 + numpy<2, no TensorFlow), installs edgeclf from this checkout into
# both, runs pytest in the first, then the edge tests again in the second on bundles the first made.
# Extra arguments go to the first pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}

if [ ! -x .venv/bin/python ]; then "$PY" -m venv .venv; fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e '.[train,edge,dev]'

# tflite-runtime 2.14 has wheels for Python <= 3.11 only.
TFL_PY=""
for cand in python3.11 python3.10 python3.9 "$PY"; do
  if command -v "$cand" >/dev/null && "$cand" -c 'import sys; sys.exit(not (3, 9) <= sys.version_info[:2] <= (3, 11))'; then
    TFL_PY=$cand; break
  fi
done
if [ -n "$TFL_PY" ]; then
  if [ ! -x .venv-tflite/bin/python ]; then "$TFL_PY" -m venv .venv-tflite; fi
  .venv-tflite/bin/python -m pip install --quiet --upgrade pip
  .venv-tflite/bin/python -m pip install --quiet -e '.[tflite-runtime]' 'pytest>=8'
fi

export EDGECLF_TFL_FIXTURES=${EDGECLF_TFL_FIXTURES:-$PWD/.pytest-fixtures/tflite}
rm -rf "$EDGECLF_TFL_FIXTURES"; mkdir -p "$EDGECLF_TFL_FIXTURES"
# Real bundles for the edge tests (tiny Keras models, real converter, float32 and int8), made once with
# TensorFlow here and used by both venvs: the tflite-runtime venv cannot build them.
echo "== test bundles (tests/make_bundles.py) -> $EDGECLF_TFL_FIXTURES"
.venv/bin/python -m tests.make_bundles "$EDGECLF_TFL_FIXTURES"

echo "== pytest (.venv: TensorFlow, ai-edge-litert)"
.venv/bin/python -m pytest -n 2 --dist loadgroup -m "not pi" "$@"

if [ -n "$TFL_PY" ]; then
  echo "== pytest -m tflite_runtime (.venv-tflite: tflite-runtime 2.14, numpy<2, no TensorFlow)"
  set +e
  .venv-tflite/bin/python -m pytest -m tflite_runtime -p no:cacheprovider tests/edge
  rc=$?
  set -e
  # Tests skip only bundle variants whose manifest says tflite-runtime 2.14 cannot load them.
  if [ "$rc" -ne 0 ]; then exit "$rc"; fi
else
  echo "no Python 3.9-3.11 here: skipped the tflite-runtime 2.14 venv" >&2
fi

# The Pi's own software: Debian 12 arm64 and armhf userlands under qemu (scripts/pi-check.sh, docs/pi.md).
# Building both takes about 22 min on 2 cores and the armhf edge suite alone runs 10-18 min under emulation, more
# than a CI run that must stay well under 30 min can hold, so this runs only when EDGECLF_PI_CHECK=1.
if [ "${EDGECLF_PI_CHECK:-}" = 1 ]; then
  echo "== pytest -m pi (scripts/pi-check.sh: Debian 12 arm64 and armhf under qemu)"
  .venv/bin/python -m pytest -m pi -p no:cacheprovider tests/test_pi_userlands.py
else
  echo "== Pi userlands not run: EDGECLF_PI_CHECK=1 scripts/test.sh runs them (about 22 min to build, 15 to run)" >&2
fi
