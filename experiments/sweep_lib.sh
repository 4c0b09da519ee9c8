# Shared by sweep_sparsity.sh and slurm_sweep.sh: resolves the config and builds the
# run list. Expects CONFIG, EXTRA (array), SPARSITIES, STRATEGIES, SEEDS, OUT, THREADS and
# optionally STRUCTURES (empty: each strategy's default structure); sets DST, BASE,
# EPOCHS, RUNS (name|strategy|sparsity|seed|structure) and defines finished(),
# skip_reason() and run_command().
#
# A structure is `unstructured`, `constant_fan_in` or N:M written `n:m` (`2:4`); an N:M
# run has the sparsity 1 − n/m and the uniform distribution it implies, so SPARSITIES
# does not apply to it. With STRUCTURES set, run names carry the structure
# (`_nm2-4`, `_unstructured`).
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
nm_sparsity() { awk -v n="$1" -v m="$2" 'BEGIN { printf "%.10g", 1 - n / m }'; }
for seed in $SEEDS; do
  for strategy in $STRATEGIES; do
    if [ "$strategy" = dense ]; then
      RUNS+=("${BASE}_dense_seed${seed}|$strategy|0|$seed|")
      continue
    fi
    for structure in ${STRUCTURES:-default}; do
      case $structure in
        default) for s in $SPARSITIES; do RUNS+=("${BASE}_${strategy}_s${s}_seed${seed}|$strategy|$s|$seed|"); done ;;
        *:*) n=${structure%%:*}; m=${structure##*:}
             RUNS+=("${BASE}_${strategy}_nm${n}-${m}_seed${seed}|$strategy|$(nm_sparsity "$n" "$m")|$seed|$structure") ;;
        *) for s in $SPARSITIES; do RUNS+=("${BASE}_${strategy}_${structure}_s${s}_seed${seed}|$strategy|$s|$seed|$structure"); done ;;
      esac
    done
  done
done

run_command() {  # run_command ENTRY: sets CMD (array) and NAME for one run of the list
  local strategy sparsity seed structure
  IFS='|' read -r NAME strategy sparsity seed structure <<< "$1"
  CMD=("$DST" run "$CONFIG" "${EXTRA[@]}" --set "name=$NAME" --set "output.root=$OUT"
       --set "sparsity.strategy=$strategy" --set "seed=$seed" --set "training.threads=$THREADS" --resume)
  [ "$strategy" = dense ] || CMD+=(--set "sparsity.sparsity=$sparsity")
  case $structure in
    "") ;;
    *:*) CMD+=(--set sparsity.structure=n_of_m --set "sparsity.n=${structure%%:*}" --set "sparsity.m=${structure##*:}"
               --set sparsity.distribution=uniform) ;;
    *) CMD+=(--set "sparsity.structure=$structure") ;;
  esac
}
