#!/usr/bin/env bash
# Submits the sweep of sweep_sparsity.sh as one SLURM job array: one array task per
# run, each resuming its run folder, results in a shared folder.
#
#   experiments/slurm_sweep.sh CONFIG [options] [-- extra dst run arguments]
#     --sparsities "0.8 0.9"  --strategies "rigl srigl"  --seeds "0 1"
#     --structures "2:4 1:4"                                              (as sweep_sparsity.sh)
#     --out DIR          shared results folder (default: results/sweeps)
#     --cpus N           CPUs per task, also the run's thread count (default 2)
#     --mem SIZE         memory per task, e.g. 8G (default 8G)
#     --time LIMIT       time limit per task, e.g. 12:00:00 (default 24:00:00)
#     --partition NAME   partition (default: the cluster's default)
#     --max-parallel N   at most N tasks at once (the array's %N)
#     --dry-run          print the job script instead of submitting it
#
# Finished runs are left out of the array; a task that is cut off (time limit,
# preemption) continues from its checkpoint when the sweep is submitted again.
set -euo pipefail
cd "$(dirname "$0")/.."

[ $# -ge 1 ] || { sed -n '2,18p' "$0"; exit 2; }
CONFIG=$1; shift
SPARSITIES="0.8 0.9 0.95"; STRATEGIES="rigl srigl"; STRUCTURES=""; SEEDS="0"; OUT=results/sweeps; DRY=0
THREADS=2; MEM=8G; TIME=24:00:00; PARTITION=""; MAXPAR=""; EXTRA=()
while [ $# -gt 0 ]; do
  case $1 in
    --sparsities) SPARSITIES=$2; shift 2 ;;
    --strategies) STRATEGIES=$2; shift 2 ;;
    --structures) STRUCTURES=$2; shift 2 ;;
    --seeds) SEEDS=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    --cpus) THREADS=$2; shift 2 ;;
    --mem) MEM=$2; shift 2 ;;
    --time) TIME=$2; shift 2 ;;
    --partition) PARTITION=$2; shift 2 ;;
    --max-parallel) MAXPAR=$2; shift 2 ;;
    --dry-run) DRY=1; shift ;;
    --) shift; EXTRA=("$@"); break ;;
    *) echo "unknown option $1 (see the comment at the top of $0)" >&2; exit 2 ;;
  esac
done
source experiments/sweep_lib.sh

mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
CONFIG=$(cd "$(dirname "$CONFIG")" && pwd)/$(basename "$CONFIG")
LIST="$OUT/.array-$(date +%Y%m%d-%H%M%S)-$$.commands"
: > "$LIST"
count=0
for entry in "${RUNS[@]}"; do
  run_command "$entry"
  reason=$(skip_reason "$OUT/$NAME"); if [ -n "$reason" ]; then echo "skip $NAME ($reason)"; continue; fi
  printf '%q ' "${CMD[@]}" >> "$LIST"; printf '\n' >> "$LIST"
  echo "task $count: $NAME"
  count=$((count + 1))
done
if [ "$count" = 0 ]; then echo "nothing to submit"; exit 0; fi

SCRIPT="$LIST.sbatch"
{
  echo "#!/usr/bin/env bash"
  echo "#SBATCH --job-name=dst-$BASE"
  echo "#SBATCH --array=0-$((count - 1))${MAXPAR:+%$MAXPAR}"
  echo "#SBATCH --cpus-per-task=$THREADS"
  echo "#SBATCH --mem=$MEM"
  echo "#SBATCH --time=$TIME"
  echo "#SBATCH --output=$OUT/slurm-%A_%a.log"
  [ -n "$PARTITION" ] && echo "#SBATCH --partition=$PARTITION"
  echo "set -euo pipefail"
  echo "cd $(printf '%q' "$PWD")"
  echo "line=\$(sed -n \"\$((SLURM_ARRAY_TASK_ID + 1))p\" $(printf '%q' "$LIST"))"
  echo "eval \"\$line\""
} > "$SCRIPT"
if [ $DRY = 1 ]; then cat "$SCRIPT"; cat "$LIST"; exit 0; fi
sbatch --parsable "$SCRIPT"
