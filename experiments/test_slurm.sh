#!/usr/bin/env bash
# Integration test of slurm_sweep.sh on a one-node SLURM cluster started on this
# machine: installs Debian's slurm-wlm and munge, starts munged, slurmctld and slurmd,
# submits a 3-task array of a tiny config, waits, and checks the three run folders.
# Needs root. `make test-slurm` runs it; it is not part of `make test`.
set -euo pipefail
cd "$(dirname "$0")/.."

export DEBIAN_FRONTEND=noninteractive
if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
  apt-get update -qq && apt-get install -y -qq slurm-wlm munge >/dev/null
fi
if [ -z "${DST:-}" ]; then
  make build >/dev/null
  DST=$(swift build -c release -Xswiftc -target-cpu -Xswiftc native --show-bin-path)/dst
fi
export DST

WORK=$(mktemp -d /tmp/dst-slurm-XXXXXX)
HOST=$(hostname -s)
CPUS=$(nproc)
MEM=$(( $(awk '/MemTotal/{print $2}' /proc/meminfo) / 1024 / 2 ))
mkdir -p "$WORK"/{state,spool,log} /etc/slurm /run/munge /var/log/munge /var/lib/munge

cleanup() {
  [ -f "$WORK/slurmd.pid" ] && kill "$(cat "$WORK/slurmd.pid")" 2>/dev/null || true
  [ -f "$WORK/slurmctld.pid" ] && kill "$(cat "$WORK/slurmctld.pid")" 2>/dev/null || true
  [ -f "$WORK/munged.pid" ] && kill "$(cat "$WORK/munged.pid")" 2>/dev/null || true
  pkill -f "munged --force --pid-file=$WORK" 2>/dev/null || true
}
trap cleanup EXIT

# munge: a key and a daemon.
[ -s /etc/munge/munge.key ] || { dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key 2>/dev/null; }
chown -R munge:munge /etc/munge /run/munge /var/log/munge /var/lib/munge 2>/dev/null || true
chmod 0400 /etc/munge/munge.key
runuser -u munge -- munged --force --pid-file="$WORK/munged.pid" 2>/dev/null \
  || munged --force --pid-file="$WORK/munged.pid"
munge -n | unmunge >/dev/null

cat > /etc/slurm/slurm.conf <<CONF
ClusterName=dstlocal
SlurmctldHost=$HOST(127.0.0.1)
SlurmUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
StateSaveLocation=$WORK/state
SlurmdSpoolDir=$WORK/spool
SlurmctldPidFile=$WORK/slurmctld.pid
SlurmdPidFile=$WORK/slurmd.pid
SlurmctldLogFile=$WORK/log/slurmctld.log
SlurmdLogFile=$WORK/log/slurmd.log
JobAcctGatherType=jobacct_gather/none
MpiDefault=none
NodeName=$HOST NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$MEM State=UNKNOWN
PartitionName=local Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
CONF
cp /etc/slurm/slurm.conf "$WORK/slurm.conf"

slurmctld -i
slurmd
for _ in $(seq 60); do
  state=$(sinfo -h -N -o %t 2>/dev/null | head -1 || true)
  [ "$state" = idle ] && break
  sleep 1
done
[ "$(sinfo -h -N -o %t | head -1)" = idle ] || { echo "FAIL: the node did not become idle"; sinfo -N; exit 1; }

OUT="$WORK/results"
JOB=$(experiments/slurm_sweep.sh configs/quickstart.yaml --strategies "set rigl srigl" --sparsities 0.9 \
        --cpus 1 --mem 1G --time 00:20:00 --out "$OUT" \
        -- --set training.epochs=1 --set training.max_batches_per_epoch=20 | tail -1)
echo "submitted job array $JOB"
for _ in $(seq 600); do
  [ -z "$(squeue -h -j "$JOB" 2>/dev/null)" ] && break
  sleep 1
done

fail=0
for strategy in set rigl srigl; do
  run="$OUT/quickstart_${strategy}_s0.9_seed0"
  if [ -f "$run/metrics.csv" ] && [ "$(wc -l < "$run/metrics.csv")" = 2 ]; then
    echo "ok   $run"
  else
    echo "FAIL $run"; fail=1
  fi
done
sacct -j "$JOB" 2>/dev/null | head -8 || true
[ $fail = 0 ] || { tail -20 "$OUT"/slurm-*.log "$WORK"/log/*.log 2>/dev/null; exit 1; }
echo "3 passed, 0 failed"
