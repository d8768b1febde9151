#!/usr/bin/env bash
# The bench rows of docs/backbones.md: every pretrained --arch next to the `edge` net, int8 at 150 and 300 px,
# measured in one `edgeclf bench` run (size, load, latency, frame cost, MACs, RSS).
#
#   benchmarks/backbones.sh [DATA_DIR] [OUT_DIR]     (defaults: the shared horse-or-human train set, runs/backbones)
#
# Latency, size, MACs and memory do not depend on the weights, so each net trains one epoch from --weights none
# on 48 images (no network needed) and converts with --allow-drop. The acc/agree columns of that table
# therefore mean nothing; accuracy of
# the pretrained nets is in docs/backbones.md (how to measure it with ImageNet weights).
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${1:-../shared/datasets/horse-or-human/train}
OUT=${2:-runs/backbones}
PY=.venv/bin
mkdir -p "$OUT"
SUBSET="$OUT/data"
if [ ! -d "$SUBSET" ]; then  # 24 images per class: the first 8 subjects x 3 frames
  for cls in "$DATA"/*/; do
    c=$(basename "$cls"); mkdir -p "$SUBSET/$c"
    ls "$cls" | sort | head -24 | while read -r f; do cp "$cls/$f" "$SUBSET/$c/"; done
  done
fi
BUNDLES="$OUT/int8"
mkdir -p "$BUNDLES"
for arch in edge mobilenetv3-small mobilenetv3-large mobilenetv2 efficientnet-lite0; do
  run="$OUT/$arch"
  if [ ! -f "$run/run.json" ]; then
    rm -rf "$run"
    weights=(); [ "$arch" = edge ] || weights=(--weights none)
    nice -n 10 $PY/edgeclf -q train "$SUBSET" --arch "$arch" "${weights[@]}" --epochs 1 --batch-size 8 --out "$run"
  fi
  # --allow-drop: one epoch from random weights leaves scores near 0.5, where int8 flips decisions; the gate
  # means nothing for these weights, and size/latency/memory do not depend on them
  [ -d "$run/bundles/150-int8" ] && [ -d "$run/bundles/300-int8" ] || \
    nice -n 10 $PY/edgeclf -q convert "$run" --quantize int8 --allow-drop
  for size in 150 300; do
    rm -rf "$BUNDLES/$arch-$size-int8"; cp -r "$run/bundles/$size-int8" "$BUNDLES/$arch-$size-int8"
  done
done
tfl=(); [ -x .venv-tflite/bin/python ] && tfl=(--tflite-python .venv-tflite/bin/python)
nice -n 10 $PY/edgeclf bench "$BUNDLES" --no-keras --out "$OUT/bench" "${tfl[@]}"
