#!/usr/bin/env bash
# Sweeps a config over sparsity levels × strategies × seeds, at most JOBS runs at once.
#
#   experiments/sweep_sparsity.sh CONFIG [options] [-- extra dst run arguments]
#     --sparsities "0.8 0.9 0.95"   --strategies "rigl srigl"   --seeds "0 1"
#     --structures "unstructured 2:4 1:4"   mask structures (default: each strategy's own);
#                     an N:M entry n:m runs at sparsity 1 − n/m, uniform, --sparsities aside
#     --jobs N        runs at once (default: one per 2 cores); each gets cores/N threads
#     --out DIR       parent of the run folders (default: results/sweeps)
#     --dry-run       print the runs and their commands, run nothing
#
# Each run folder is named <config name>_<strategy>_s<sparsity>_seed<seed> (dense runs:
# <config name>_dense_seed<seed>; with --structures, <strategy>_<structure>_s<sparsity>
# or <strategy>_nm<n>-<m>). Re-running the same sweep skips finished runs and
# resumes unfinished ones from their last checkpoint.
set -euo pipefail
cd "$(dirname "$0")/.."

[ $# -ge 1 ] || { sed -n '2,16p' "$0"; exit 2; }
CONFIG=$1; shift
SPARSITIES="0.8 0.9 0.95"; STRATEGIES="rigl srigl"; STRUCTURES=""; SEEDS="0"; OUT=results/sweeps; DRY=0
CORES=$(nproc); JOBS=$(( CORES / 2 > 0 ? CORES / 2 : 1 )); EXTRA=()
while [ $# -gt 0 ]; do
  case $1 in
    --sparsities) SPARSITIES=$2; shift 2 ;;
    --strategies) STRATEGIES=$2; shift 2 ;;
    --structures) STRUCTURES=$2; shift 2 ;;
    --seeds) SEEDS=$2; shift 2 ;;
    --jobs) JOBS=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    --dry-run) DRY=1; shift ;;
    --) shift; EXTRA=("$@"); break ;;
    *) echo "unknown option $1 (see the comment at the top of $0)" >&2; exit 2 ;;
  esac
done
THREADS=$(( CORES / JOBS > 0 ? CORES / JOBS : 1 ))
source experiments/sweep_lib.sh

running=0
for entry in "${RUNS[@]}"; do
  run_command "$entry"
  name=$NAME
  reason=$(skip_reason "$OUT/$name"); if [ -n "$reason" ]; then echo "skip $name ($reason)"; continue; fi
  if [ $DRY = 1 ]; then echo "run $name: ${CMD[*]}"; continue; fi
  mkdir -p "$OUT"
  echo "start $name"
  cmd=("${CMD[@]}")
  ( "${cmd[@]}" > "$OUT/$name.log" 2>&1 && echo "done $name" || echo "FAILED $name (see $OUT/$name.log)" ) &
  running=$((running + 1))
  if [ $running -ge "$JOBS" ]; then wait -n || true; running=$((running - 1)); fi
done
wait
[ $DRY = 1 ] || "$DST" compare "$OUT"
