#!/usr/bin/env bash
# Start a throw-away single-node SLURM (munge + slurmctld + slurmd) on this machine, for tests
# and demos of `--cluster slurm`. Needs root. Installs the Debian packages slurm-wlm and munge
# when they are missing.
#
#   cluster/local-slurm/start.sh          # prints: export SLURM_CONF=...
#   eval "$(cluster/local-slurm/start.sh | tail -n 1)"
#   cluster/local-slurm/stop.sh
#
# Everything (config, munge key and socket, state, spool, logs, PID files) lives in one folder,
# $NMBATCH_SLURM_DIR (default /tmp/nmbatch-slurm), wiped at each start so no old job comes back.
# The daemons run in the foreground (-D / -F) in the background of this script: their PIDs are
# recorded in $NMBATCH_SLURM_DIR/pids/ and stop.sh stops exactly those. Running start.sh while
# this SLURM is up only prints the export line again.
set -euo pipefail

DIR=${NMBATCH_SLURM_DIR:-/tmp/nmbatch-slurm}
CONF=$DIR/slurm.conf
HERE=$(cd "$(dirname "$0")" && pwd)

if [[ $(id -u) -ne 0 ]]; then
    echo "start.sh: must run as root (it starts munged, slurmctld and slurmd)" >&2
    exit 1
fi

alive() {  # alive NAME: the recorded daemon NAME runs (PID file present, process of that name)
    local pid
    pid=$(cat "$DIR/pids/$1" 2>/dev/null) || return 1
    [[ $(cat "/proc/$pid/comm" 2>/dev/null) == "$1" ]]
}

if alive munged && alive slurmctld && alive slurmd && SLURM_CONF=$CONF sinfo -h >/dev/null 2>&1; then
    echo "start.sh: SLURM already running from $DIR" >&2
    echo "export SLURM_CONF=$CONF"
    exit 0
fi
if [[ -e $DIR && ! -d $DIR/pids && -n $(ls -A "$DIR" 2>/dev/null) ]]; then
    echo "start.sh: $DIR exists and was not made by start.sh: choose another NMBATCH_SLURM_DIR" >&2
    exit 1
fi
if [[ -d $DIR ]]; then  # half up or stale: clear it out first
    "$HERE/stop.sh" >&2
fi

if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null \
    || ! command -v munged >/dev/null; then
    echo "start.sh: installing slurm-wlm and munge" >&2
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        slurm-wlm munge >&2
fi

fail() {  # stop what did start, keep the logs for a look
    echo "start.sh: $1; logs in $DIR/log and $DIR/munge" >&2
    NMBATCH_SLURM_KEEP=1 "$HERE/stop.sh" >&2
    exit 1
}

started=$EPOCHREALTIME
rm -rf "$DIR"  # a reused state folder brings old jobs back
mkdir -p "$DIR"/{pids,log,state,spool,munge}
chmod 755 "$DIR"

# munge: its own key and socket in $DIR; munged refuses to run as root, so it runs as the munge
# user (setpriv execs, so $! is munged's own PID).
chown munge:munge "$DIR/munge"
chmod 755 "$DIR/munge"  # munged wants its socket folder searchable by all
dd if=/dev/urandom of="$DIR/munge/munge.key" bs=1024 count=1 status=none
chown munge:munge "$DIR/munge/munge.key"
chmod 400 "$DIR/munge/munge.key"
setpriv --reuid=munge --regid=munge --init-groups munged -F \
    --key-file="$DIR/munge/munge.key" --socket="$DIR/munge/munge.socket" \
    --pid-file="$DIR/munge/munged.pid" --seed-file="$DIR/munge/munged.seed" \
    --log-file="$DIR/munge/munged.log" </dev/null >>"$DIR/log/munged.out" 2>&1 &
echo $! >"$DIR/pids/munged"
for _ in $(seq 100); do [[ -S $DIR/munge/munge.socket ]] && break; sleep 0.05; done
[[ -S $DIR/munge/munge.socket ]] || fail "munged did not start"

# slurm.conf: this host as the only node, with the topology slurmd detects and at most 85 % of
# the physical memory (more makes the node INVALID).
host=$(hostname -s)
topology=$(slurmd -C | head -n 1 | sed -E 's/^NodeName=[^ ]+ //; s/ RealMemory=[0-9]+//')
mem_mb=$(awk '/^MemTotal:/ {printf "%d", $2 / 1024 * 0.85}' /proc/meminfo)
cat >"$CONF" <<EOF
# Throw-away single-node SLURM written by cluster/local-slurm/start.sh: do not edit, it is rewritten.
ClusterName=nmbatch
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$DIR/munge/munge.socket
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1024
ReturnToService=2
MailProg=/bin/true
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
NodeName=$host NodeAddr=127.0.0.1 $topology RealMemory=$mem_mb State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF

export SLURM_CONF=$CONF
slurmctld -D -i -f "$CONF" </dev/null >>"$DIR/log/slurmctld.out" 2>&1 &
echo $! >"$DIR/pids/slurmctld"
slurmd -D -f "$CONF" </dev/null >>"$DIR/log/slurmd.out" 2>&1 &
echo $! >"$DIR/pids/slurmd"

for _ in $(seq 300); do
    state=$(sinfo -h -o %T 2>/dev/null || true)
    [[ $state == idle ]] && break
    sleep 0.1
done
[[ $state == idle ]] || fail "the node is not idle after 30 s (state '$state')"
awk -v t0="$started" -v t1="$EPOCHREALTIME" -v node="$host: $topology RealMemory=$mem_mb" \
    'BEGIN {printf "start.sh: SLURM up in %.1f s (partition debug, node %s)\n", t1 - t0, node}' >&2
echo "export SLURM_CONF=$CONF"
