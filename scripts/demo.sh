#!/usr/bin/env bash
# The README's demo: `optimize` on an embedded default — the built-in ResNet-18 (zoo) on the built-in
# ort-cpu target. It mines a small segment database first (a few NAS networks per family; reused on
# later runs), then runs the AutoGO search with measure-in-the-loop and writes the best model + report.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
OUT=${DEMO_OUT:-out/demo}
mkdir -p "$OUT"
if [ ! -f "$OUT/segments.db" ]; then
  $BIN/autogo-deploy db build --limit 400 -o "$OUT/segments.db"
fi
$BIN/autogo-deploy optimize zoo:resnet18 --target ort-cpu --db "$OUT/segments.db" \
  --generations 3 --population 8 --max-runs 40 \
  -o "$OUT/resnet18.optimized.onnx" --report "$OUT/report.html"
$BIN/autogo-deploy inspect "$OUT/resnet18.optimized.onnx" --limit 5 2>/dev/null \
  || echo "(no model was written: nothing beat the input within the budgets)"
echo "report: $OUT/report.html"
