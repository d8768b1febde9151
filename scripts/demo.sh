#!/usr/bin/env bash
# The main job end to end on a fresh machine: make .venv, install edgeclf from this checkout, then
# train -> convert -> bench -> camera on a clip (python -m edgeclf.demo). Arguments go to the demo:
#   --data DIR (else $EDGECLF_DATA, ~/.cache/edgeclf, or the official download), --out runs/demo, --epochs N
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then "$PY" -m venv .venv; fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e '.[train,edge,dev]'
exec .venv/bin/python -m edgeclf.demo "$@"
