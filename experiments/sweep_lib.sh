# Shared by sweep_sparsity.sh and slurm_sweep.sh: resolves the config and builds the
# run list. Expects CONFIG, EXTRA (array), SPARSITIES, STRATEGIES, SEEDS, OUT, THREADS;
# sets DST, BASE, EPOCHS, RUNS (name|strategy|sparsity|seed) and defines finished(),
# skip_reason() and run_command().
DST=${DST:-}
if [ -z "$DST" ]; then
  make build >/dev/null
  DST=$(swift build -c release -Xswiftc -target-cpu -Xswiftc native --show-bin-path)/dst
fi
RESOLVED=$("$DST" validate "$CONFIG" "${EXTRA[@]}")
BASE=$(printf '%s\n' "$RESOLVED" | sed -n 's/^name: //p')
EPOCHS=$(printf '%s\n' "$RESOLVED" | awk '/^training:/{t=1;next} /^[^ ]/{t=0} t && /^  epochs:/{print $2}')

finished() {  # finished FOLDER: metrics.csv holds one row per planned epoch
  [ -f "$1/metrics.csv" ] && [ "$(( $(wc -l < "$1/metrics.csv") - 1 ))" -ge "$EPOCHS" ]
}

skip_reason() {  # skip_reason FOLDER: why the run needs no new attempt (empty: run it)
  if [ -f "$1/diverged.txt" ]; then echo "diverged: $(head -1 "$1/diverged.txt"); rerun it with --force after a fix"
  elif finished "$1"; then echo finished; fi
}

RUNS=()
for seed in $SEEDS; do
  for strategy in $STRATEGIES; do
    if [ "$strategy" = dense ]; then
      RUNS+=("${BASE}_dense_seed${seed}|$strategy|0|$seed")
    else
      for s in $SPARSITIES; do RUNS+=("${BASE}_${strategy}_s${s}_seed${seed}|$strategy|$s|$seed"); done
    fi
  done
done

run_command() {  # run_command ENTRY: sets CMD (array) and NAME for one run of the list
  local strategy sparsity seed
  IFS='|' read -r NAME strategy sparsity seed <<< "$1"
  CMD=("$DST" run "$CONFIG" "${EXTRA[@]}" --set "name=$NAME" --set "output.root=$OUT"
       --set "sparsity.strategy=$strategy" --set "seed=$seed" --set "training.threads=$THREADS" --resume)
  [ "$strategy" = dense ] || CMD+=(--set "sparsity.sparsity=$sparsity")
}
