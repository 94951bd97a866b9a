#!/usr/bin/env bash
# A single-node SLURM cluster on this machine, for testing the slurm profile (and as documentation of what the
# profile needs from a cluster). Loopback only, no cgroups, no accounting database.
#
#   tests/slurm/cluster.sh install   # apt-get install slurm-wlm munge (needs root; Debian/Ubuntu)
#   tests/slurm/cluster.sh start     # write slurm.conf under $PERCEPT_SLURM_DIR (linked from /etc/slurm),
#                                    # start munged, slurmctld, slurmd
#   tests/slurm/cluster.sh stop      # stop the daemons (and cancel any job left)
#
# Then:  snakemake --profile profiles/slurm --slurm-no-account ...
#
# Why no slurmdbd: the executor plugin reads job states with `sacct` when accounting is on, and falls back to
# `squeue` when it is not (--slurm-status-command squeue, set in the test). `squeue` only sees a finished job for
# MinJobAge seconds, so MinJobAge=3600 keeps them an hour (the test reads every job's record at the end; 0, documented as
# "never purge", purged them at once in this version).
# An account is not needed either (--slurm-no-account); on a real cluster the user fills in slurm_account in profiles/slurm/config.yaml.
set -euo pipefail

DIR="${PERCEPT_SLURM_DIR:-/tmp/percept-slurm}"
NODE="$(hostname -s)"
CPUS="$(nproc)"
MEM_MB=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 2048 ))

install() {
  if command -v slurmctld >/dev/null && command -v munged >/dev/null && command -v sbatch >/dev/null; then
    echo "slurm and munge already installed"; return 0
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null
}

write_conf() {
  mkdir -p "$DIR"/{state,spool,log,run}
  cat >"$DIR/slurm.conf" <<EOF
ClusterName=percept
SlurmctldHost=${NODE}(127.0.0.1)
SlurmctldPort=16817
SlurmdPort=16818
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/run/slurmctld.pid
SlurmdPidFile=$DIR/run/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
GresTypes=gpu
MinJobAge=3600
ReturnToService=2
SlurmctldTimeout=30
SlurmdTimeout=30
MpiDefault=none
NodeName=${NODE} NodeAddr=127.0.0.1 CPUs=${CPUS} RealMemory=${MEM_MB} Gres=gpu:1 State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
  # A stand-in GPU (slurm drops file-less GPUs, so /dev/null plays the device file): jobs that request a GPU are scheduled (one at a time) and the
  # request itself is what the test checks; the job sees no CUDA device and runs on the CPU (device: auto).
  cat >"$DIR/gres.conf" <<EOF
AutoDetect=off
NodeName=${NODE} Name=gpu File=/dev/null Count=1
EOF
}

link_conf() {
  # The executor plugin's job step strips SLURM_* variables (SLURM_CONF included) before its nested `srun`, so,
  # as on a real cluster, the configuration must be at the default path. Refuse to replace a foreign one.
  mkdir -p /etc/slurm
  for f in slurm.conf gres.conf; do
    if [ -e "/etc/slurm/$f" ] && [ "$(readlink "/etc/slurm/$f")" != "$DIR/$f" ]; then
      # A link to another test cluster's configuration whose controller no longer runs was left by a killed test
      # run (no `stop`): stale, so replace it. Anything else is foreign: refuse.
      old="$(dirname "$(readlink "/etc/slurm/$f")")"
      if [ "$old" != "." ] && grep -qx 'ClusterName=percept' "$old/slurm.conf" 2>/dev/null \
          && ! pgrep -f "slurmctld -f $old/slurm.conf" >/dev/null; then
        echo "replacing /etc/slurm/$f: a stopped test cluster's ($old)" >&2
      else
        echo "/etc/slurm/$f exists and is not this test cluster's; not replacing it" >&2; return 1
      fi
    fi
    ln -sfn "$DIR/$f" "/etc/slurm/$f"
  done
}

start() {
  write_conf
  link_conf
  export SLURM_CONF="$DIR/slurm.conf"
  mkdir -p /run/munge /var/log/munge /var/lib/munge
  chown munge:munge /run/munge /var/log/munge /var/lib/munge 2>/dev/null || true
  if [ ! -s /etc/munge/munge.key ]; then
    (command -v mungekey >/dev/null && mungekey --create --force) || \
      dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key 2>/dev/null
    chown munge:munge /etc/munge/munge.key; chmod 400 /etc/munge/munge.key
  fi
  if ! munge -n </dev/null >/dev/null 2>&1; then
    runuser -u munge -- /usr/sbin/munged --force
  fi
  for _ in $(seq 50); do munge -n </dev/null >/dev/null 2>&1 && break; sleep 0.1; done
  /usr/sbin/slurmctld -f "$SLURM_CONF"
  /usr/sbin/slurmd -f "$SLURM_CONF" -N "$NODE"
  for _ in $(seq 120); do
    if sinfo -h -o '%T' 2>/dev/null | grep -qE '^(idle|mixed|allocated)'; then
      echo "slurm up: $(sinfo -h -o '%P %D %T %c cpus %m MB %G')"; return 0
    fi
    sleep 0.5
  done
  echo "slurm did not come up; logs:" >&2
  tail -n 30 "$DIR/log/slurmctld.log" "$DIR/log/slurmd.log" >&2 || true
  return 1
}

stop() {
  export SLURM_CONF="$DIR/slurm.conf"
  if [ -f "$SLURM_CONF" ]; then scancel --user=root >/dev/null 2>&1 || true; fi
  for pidfile in "$DIR/run/slurmd.pid" "$DIR/run/slurmctld.pid"; do
    if [ -f "$pidfile" ]; then kill "$(cat "$pidfile")" 2>/dev/null || true; fi
  done
  for _ in $(seq 50); do
    pgrep -f "slurm(ctld|d) -f $DIR" >/dev/null || break; sleep 0.1
  done
  pkill -f "slurm(ctld|d) -f $DIR" 2>/dev/null || true
  for f in slurm.conf gres.conf; do
    if [ "$(readlink "/etc/slurm/$f" 2>/dev/null)" = "$DIR/$f" ]; then rm -f "/etc/slurm/$f"; fi
  done
}

case "${1:-}" in
  install) install ;;
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 install|start|stop" >&2; exit 2 ;;
esac
