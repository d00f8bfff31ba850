#!/usr/bin/env bash
# README.md = docs/README.head.md + docs/*.md in reading order (docs/ stays the source of each section).
# Sections whose top heading is "# " are demoted one level so the README has a single title.
set -euo pipefail
cd "$(dirname "$0")/.."
demote='BEGIN{code=0} /^```/{code=!code} { if (!code && $0 ~ /^#+ /) print "#" $0; else print }'
{
  cat docs/README.head.md
  for f in 00-overview graph optimize zoo profiling tvm-and-npu segments mutation predictor ci-gate; do
    echo
    if head -n 5 "docs/$f.md" | grep -q '^# '; then awk "$demote" "docs/$f.md"; else cat "docs/$f.md"; fi
  done
} > README.md
