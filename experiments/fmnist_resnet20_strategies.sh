#!/usr/bin/env bash
# Trains ResNet-20 on Fashion-MNIST at 90% sparsity with every strategy (plus the dense
# baseline and SRigL without ablation), then SRigL at 99%, and prints a results table.
#   EPOCHS=15 experiments/fmnist_resnet20_strategies.sh      (default: the configs' 15)
# Run folders: results/strategies/<run>/ ; existing ones are skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
make build >/dev/null
DST=$(swift build -c release -Xswiftc -target-cpu -Xswiftc native --show-bin-path)/dst
OUT=${OUT:-results/strategies}
EXTRA=()
[ -n "${EPOCHS:-}" ] && EXTRA+=(--set "training.epochs=$EPOCHS")

run() {  # run NAME CONFIG [--set ...]
  local name=$1 config=$2; shift 2
  if [ -f "$OUT/$name/metrics.csv" ]; then echo "skip $name (exists)"; return; fi
  "$DST" run "$config" --set "name=$name" --set "output.root=$OUT" "${EXTRA[@]}" "$@"
}

run dense configs/fmnist_resnet20_dense.yaml
for s in static set rigl srigl; do run "${s}90" "configs/fmnist_resnet20_${s}90.yaml"; done
run srigl90_no_ablation configs/fmnist_resnet20_srigl90.yaml --set sparsity.ablation=false
run srigl99 configs/fmnist_resnet20_srigl90.yaml --set sparsity.sparsity=0.99
"$DST" compare "$OUT"
