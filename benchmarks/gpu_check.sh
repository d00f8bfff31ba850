#!/usr/bin/env bash
# The GPU paths on a lent NVIDIA machine (the `device` tool): ort-cuda, tvm-cuda, NVML power.
# CI has no GPU, so these paths only skip there; this script is how they were checked on real cards.
#
# The machine has python3 with torch, onnx, nvidia-ml-py and a CPU onnxruntime, but no onnxruntime-gpu,
# TVM, onnxslim or highspy, and no network. Here, in the repo root, build what travels (ignored folder
# .devcarry/):   bash benchmarks/gpu_check.sh pack [tvm]
# = onnxruntime-gpu unpacked and xz-packed (ort.tar.xz; with `tvm` also the apache-tvm wheels), tarred
# and split into 50 MiB parts (one per call: a call carries at most 64 MiB with the tree), and the small
# wheels (onnxslim, highspy) with the bundle's sha256 in .devcarry/small. Then, back to back (the machine
# goes back after ~30 s idle):
#   run: bash benchmarks/gpu_check.sh stage .devcarry/part_00     carry [".devcarry/part_00"]
#   ...  (each part)
#   run: bash benchmarks/gpu_check.sh stage .devcarry/part_NN && bash benchmarks/gpu_check.sh run [spread]
#        carry [".devcarry/part_NN", ".devcarry/small"]
# `run` checks every GPU path (needs the tvm bundle); `run spread` only ort-cuda: its run-to-run spread
# (benchmarks/gpu_spread.py), the ORT GPU tests, and head-to-heads of ResNet-50 against itself with and
# without the CUDA graph (the noise floor `optimize` has to clear). `run tests` = the ORT GPU and power
# tests alone; `run optimize` = `optimize resnet50 --target ort-cuda` with a search of $SEARCH_S s
# (default 210) and the head to head, as its own call after `run tests` (the install stays on the
# warm machine), carrying [".devcarry/extra"]: the segment database built here and ../shared/data,
# so the machine neither rebuilds the database (~2 min) nor mines it without the NB101/FBNet data.
# Results land in $OUT (log.txt, JSON). SKIP_INSTALL=1 runs it where the packages are already
# installed (a dry run on a CPU machine: the GPU steps then fail or skip with their reason).
set -uo pipefail
PARTS=/tmp/autogo-parts
SITE=/tmp/autogo-site
WORK=/tmp/autogo-gpu

case "${1:-}" in
pack)
  D=.devcarry
  grep -qx '/.devcarry/' .git/info/exclude 2>/dev/null || echo '/.devcarry/' >>.git/info/exclude
  rm -rf $D/part_* $D/bundle $D/dl && mkdir -p $D/dl $D/bundle $D/small
  dl() {
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
      --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_24_x86_64 \
      -d "$1" "$2"
  }
  if [ ! -f $D/ort.tar.xz ]; then # kept between packs: xz -9 of the 350 MB tree takes minutes
    dl $D/dl onnxruntime-gpu==1.31.1 && mkdir -p $D/dl/site && (cd $D/dl/site && unzip -q ../onnxruntime_gpu-*.whl) &&
      tar -C $D/dl/site -cf - . | xz -9 -T2 >$D/ort.tar.xz || exit 1
  fi
  cp $D/ort.tar.xz $D/bundle/
  if [ "${2:-}" = tvm ]; then
    dl $D/bundle apache-tvm==0.27.0.post1 && dl $D/bundle apache-tvm-ffi==0.1.14.post1 || exit 1
  fi
  rm -rf $D/extra && mkdir -p $D/extra/cache &&
    python3 -c 'import sqlite3, sys; sqlite3.connect(sys.argv[1]).backup(sqlite3.connect(sys.argv[2]))' \
      "$(python3 -c 'from autogo_deploy.segments.db import default_db, default_path; default_db(); print(default_path())')" \
      $D/extra/cache/segments-v1.db && cp -r "${AUTOGO_SHARED_DATA:-../shared/data}" $D/extra/data || exit 1
  rm -f $D/small/*.whl && dl $D/small onnxslim==0.1.98 && dl $D/small highspy==1.15.1 || exit 1
  tar -C $D/bundle -cf /tmp/devbundle.tar . && sha256sum /tmp/devbundle.tar >$D/small/bundle.sha256 || exit 1
  (cd $D && split -b 50M -d /tmp/devbundle.tar chunk && for c in chunk*; do
    mkdir "part_${c#chunk}" && mv "$c" "part_${c#chunk}/"
  done)
  rm -rf /tmp/devbundle.tar $D/bundle $D/dl && du -sh $D/*
  exit 0 ;;
stage)
  mkdir -p "$PARTS" && cp "$2"/* "$PARTS"/ && ls -la "$PARTS"
  nvidia-smi --query-gpu=name,compute_cap,driver_version,power.draw,temperature.gpu --format=csv
  exit 0 ;;
run) ;;
*) echo "usage: $0 pack [tvm] | stage DIR | run [spread|tests|optimize]" >&2; exit 2 ;;
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
    $(ls "$WORK"/bundle/*.whl 2>/dev/null) .devcarry/small/*.whl || exit 1
fi
export PYTHONPATH="$SITE:$PWD" PYTHONUNBUFFERED=1
python3 -c "import onnxruntime as o, onnxslim, highspy, torch; print('onnxruntime', o.__version__, o.get_available_providers(), 'torch', torch.__version__)"
if [ -d .devcarry/extra ]; then # the segment database and the shared data built/held here (see pack)
  mkdir -p "$WORK/cache" && for f in .devcarry/extra/cache/*; do [ -e "$WORK/cache/${f##*/}" ] || cp "$f" "$WORK/cache/"; done
  export AUTOGO_CACHE_DIR="$WORK/cache" AUTOGO_SHARED_DATA="$PWD/.devcarry/extra/data"
fi

if [ "${2:-}" = tests ]; then
  step "GPU tests of the ORT backend and NVML power"
  timeout 180 python3 -m pytest -q -rs -p no:cacheprovider tests/backends/test_ort.py tests/test_power.py
  step done
  exit 0
fi

optimize_resnet50() { # SEARCH_SECONDS SEED OUT_JSON: optimize ResNet-50 on ort-cuda (report beside OUT_JSON)
  [ -f "$WORK/resnet50.onnx" ] || $A zoo export resnet50 -o "$WORK/resnet50.onnx" || return 1
  timeout $(($1 + 330)) $A optimize "$WORK/resnet50.onnx" --target ort-cuda --time-limit "$1" --generations 1000 \
    --seed "$2" -o "$WORK/resnet50_opt.onnx" --report "${3%.json}.html" --json >"$3"
  echo "optimize rc=$?"
  python3 - "$3" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
print("stopped:", d["stopped"], "elapsed_s:", d["elapsed_s"], "candidates:", d["candidates_evaluated"])
print("improvement:", d.get("improvement"))
print("baseline measured:", d["baseline"]["measured"])
print("best measured:", (d.get("best") or {}).get("measured"), d.get("why_no_result", ""))
for t in (d.get("head_to_head") or {}).get("tries", []):
    print("h2h", t["candidate"], t["accepted"], round(t["latency_ratio"], 4), [round(x, 4) for x in t["latency_ratio_ci95"]])
EOF
}

if [ "${2:-}" = optimize ]; then
  step "optimize resnet50 on ort-cuda, ${SEARCH_S:=210} s search, head to head"
  optimize_resnet50 "$SEARCH_S" "${SEED:-0}" "$OUT/optimize_ort_cuda.json"
  step done
  exit 0
fi

if [ "${2:-}" = spread ]; then
  step "zoo model"
  $A zoo export resnet50 -o "$WORK/resnet50.onnx" || exit 1
  step "ort-cuda spread: sessions and processes under each cuDNN algorithm search, CUDA graphs, NUMA pinning"
  [ -n "${SKIP_SPREAD:-}" ] || timeout 240 python3 benchmarks/gpu_spread.py "$WORK/resnet50.onnx" --out "$OUT/gpu_spread.json"
  step "GPU tests of the ORT backend"
  timeout 120 python3 -m pytest -q -rs -p no:cacheprovider tests/backends/test_ort.py
  step "head to head, ResNet-50 against itself, on ort-cuda (CUDA graph) and without the graph"
  timeout 150 python3 benchmarks/gpu_spread.py --h2h "$WORK/resnet50.onnx" "$WORK/resnet50.onnx" \
    --target ort-cuda --rounds 6 --out "$OUT/h2h_graph.json"
  sed 's/^cuda_graph = true/cuda_graph = false/; s/^name = .*/name = "ort-cuda-nograph"/' targets/ort-cuda.toml \
    >"$WORK/ort-cuda-nograph.toml"
  timeout 120 python3 benchmarks/gpu_spread.py --h2h "$WORK/resnet50.onnx" "$WORK/resnet50.onnx" \
    --target "$WORK/ort-cuda-nograph.toml" --rounds 4 --out "$OUT/h2h_nograph.json"
  step done
  exit 0
fi

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
optimize_resnet50 60 0 "$OUT/optimize_resnet50_ort_cuda.json"

step "profile resnet18 on tvm-cuda (untuned, arch auto)"
timeout 240 $A profile "$WORK/resnet18.onnx" --target tvm-cuda --json > "$OUT/profile_resnet18_tvm_cuda.json"
echo "rc=$?"
step done
