#!/usr/bin/env bash
# The GPU paths on a lent NVIDIA machine (the `device` tool): ort-cuda, tvm-cuda, NVML power.
# CI has no GPU, so these paths only skip there; this script is how they were checked on real cards.
#
# The machine has python3 with torch, onnx, nvidia-ml-py and a CPU onnxruntime, but no onnxruntime-gpu,
# TVM, onnxslim or highspy, and no network. Here, in the repo root, build what travels (ignored folder
# .devcarry/): onnxruntime-gpu unpacked and xz-packed (ort.tar.xz), the apache-tvm wheels, tarred and
# split into 50 MB parts (one per call: a call carries at most 64 MiB with the tree), and the small
# wheels (onnxslim, highspy) with the bundle's sha256 in .devcarry/small. Then, back to back (the machine
# goes back after ~30 s idle):
#   run: bash benchmarks/gpu_check.sh stage .devcarry/part_00     carry [".devcarry/part_00"]
#   ...  (each part)
#   run: bash benchmarks/gpu_check.sh stage .devcarry/part_05 && bash benchmarks/gpu_check.sh run
#        carry [".devcarry/part_05", ".devcarry/small"]
# Results land in $OUT (log.txt, profile and optimize JSON). SKIP_INSTALL=1 runs it where the packages
# are already installed (a dry run on a CPU machine: the GPU steps then fail or skip with their reason).
set -uo pipefail
PARTS=/tmp/autogo-parts
SITE=/tmp/autogo-site
WORK=/tmp/autogo-gpu

case "${1:-}" in
stage)
  mkdir -p "$PARTS" && cp "$2"/* "$PARTS"/ && ls -la "$PARTS"
  nvidia-smi --query-gpu=name,compute_cap,driver_version,power.draw,temperature.gpu --format=csv
  exit 0 ;;
run) ;;
*) echo "usage: $0 stage DIR | run" >&2; exit 2 ;;
esac

: "${OUT:?OUT must name the folder for results}"
mkdir -p "$WORK"
exec > >(tee "$OUT/log.txt") 2>&1
step() { echo; echo "== $(date +%T) $*"; }
A="python3 -m autogo_deploy.cli.app"

step environment
nvidia-smi --query-gpu=name,compute_cap,driver_version,power.draw,power.limit --format=csv
python3 -V; nvcc --version | tail -2; nproc

step install
if [ -z "${SKIP_INSTALL:-}" ] && [ ! -d "$SITE/onnxruntime" ]; then
  want=$(cut -d' ' -f1 .devcarry/small/bundle.sha256)
  got=$(cat "$PARTS"/chunk* | tee "$WORK/bundle.tar" | sha256sum | cut -d' ' -f1)
  [ "$want" = "$got" ] || { echo "bundle sha256 mismatch: $got != $want"; exit 1; }
  mkdir -p "$SITE" "$WORK/bundle" && tar -xf "$WORK/bundle.tar" -C "$WORK/bundle" && rm "$WORK/bundle.tar"
  tar -xJf "$WORK/bundle/ort.tar.xz" -C "$SITE"
  python3 -m pip install -q --no-index --no-deps --no-compile --target "$SITE" \
    "$WORK"/bundle/*.whl .devcarry/small/*.whl || exit 1
fi
export PYTHONPATH="$SITE:$PWD" PYTHONUNBUFFERED=1
python3 -c "import onnxruntime as o, tvm, onnxslim, highspy, torch; print('onnxruntime', o.__version__, o.get_available_providers()); print('tvm', tvm.__version__, 'torch', torch.__version__)"

step "targets (availability)"
timeout 60 $A targets

step "zoo models"
$A zoo export resnet50 -o "$WORK/resnet50.onnx" && $A zoo export resnet18 -o "$WORK/resnet18.onnx"

step "profile resnet50 on ort-cuda (NVML energy)"
timeout 180 $A profile "$WORK/resnet50.onnx" --target ort-cuda --json > "$OUT/profile_resnet50_ort_cuda.json"
echo "rc=$?"; python3 - "$OUT/profile_resnet50_ort_cuda.json" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
print({k: d["latency"][k] for k in ("p50_ms", "p90_ms", "runs", "ci95_rel")})
print("power:", d["power"])
print("providers:", d["env"].get("session_providers"), d["method"].get("cuda_libraries"))
EOF

step "gpu tests"
timeout 300 python3 -m pytest -q -rs -p no:cacheprovider tests/test_power.py tests/backends/test_ort.py \
  tests/backends/test_tvm_cuda.py tests/backends/test_tvm.py

step "check resnet50 on ort-cuda (budget gate)"
timeout 180 $A check "$WORK/resnet50.onnx" --target ort-cuda; echo "check rc=$?"

step "optimize resnet50 on ort-cuda, 60 s search"
timeout 420 $A optimize "$WORK/resnet50.onnx" --target ort-cuda --time-limit 60 --generations 1000 --seed 0 \
  -o "$WORK/resnet50_opt.onnx" --json > "$OUT/optimize_resnet50_ort_cuda.json"
echo "optimize rc=$?"; python3 - "$OUT/optimize_resnet50_ort_cuda.json" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
print("improvement:", d.get("improvement")); print("head_to_head:", d.get("head_to_head"))
print("baseline measured:", d["baseline"]["measured"])
print("best measured:", d["best"]["measured"] if d.get("best") else None, d.get("why_no_result", ""))
EOF

step "profile resnet18 on tvm-cuda (untuned, arch auto)"
timeout 240 $A profile "$WORK/resnet18.onnx" --target tvm-cuda --json > "$OUT/profile_resnet18_tvm_cuda.json"
echo "rc=$?"
step done
