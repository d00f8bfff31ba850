#!/usr/bin/env bash
# The README's demo: the main job on an embedded default (built-in model + built-in target).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
OUT=${DEMO_OUT:-out/demo}
mkdir -p "$OUT"
$BIN/autogo-deploy zoo export resnet18 -o "$OUT/resnet18.onnx"
$BIN/autogo-deploy inspect "$OUT/resnet18.onnx" --limit 10
