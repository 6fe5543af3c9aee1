#!/usr/bin/env bash
# Stop the throw-away SLURM that start.sh started, and remove its folder.
#
# Cancels every job first and waits until the queue is empty (so no worker outlives the
# daemons), then stops slurmd, slurmctld and munged by the PIDs start.sh recorded, and deletes
# $NMBATCH_SLURM_DIR (default /tmp/nmbatch-slurm). Set NMBATCH_SLURM_KEEP=1 to keep the folder
# (logs) for a post-mortem. Safe to run when nothing is running.
set -euo pipefail

DIR=${NMBATCH_SLURM_DIR:-/tmp/nmbatch-slurm}
export SLURM_CONF=$DIR/slurm.conf

if [[ ! -d $DIR ]]; then
    echo "stop.sh: no SLURM state in $DIR: nothing to stop" >&2
    exit 0
fi
if [[ ! -d $DIR/pids ]]; then
    echo "stop.sh: $DIR was not made by start.sh: leaving it alone" >&2
    exit 1
fi
started=$EPOCHREALTIME

pid_of() {  # pid_of NAME: the PID start.sh recorded, if that process still runs under that name
    local pid
    pid=$(cat "$DIR/pids/$1" 2>/dev/null) || return 1
    [[ $(cat "/proc/$pid/comm" 2>/dev/null) == "$1" ]] && echo "$pid"
}

if pid_of slurmctld >/dev/null; then
    jobs=$(squeue -h -o %i 2>/dev/null || true)
    if [[ -n $jobs ]]; then
        # shellcheck disable=SC2086  # one argument per job id
        scancel $jobs 2>/dev/null || true
        for _ in $(seq 300); do
            [[ -z $(squeue -h -o %i 2>/dev/null || true) ]] && break
            sleep 0.1
        done
    fi
fi

any_alive() {  # any_alive PID...: one of these processes still exists
    local pid
    for pid in "$@"; do [[ -d /proc/$pid ]] && return 0; done
    return 1
}

stop() {  # stop NAME...: SIGTERM to each recorded daemon, wait for all, SIGKILL after 10 s
    local name pid pids=()
    for name in "$@"; do
        pid=$(pid_of "$name") || continue
        kill -TERM "$pid" 2>/dev/null || true
        pids+=("$pid")
    done
    for _ in $(seq 100); do
        any_alive "${pids[@]}" || return 0
        sleep 0.1
    done
    for pid in "${pids[@]}"; do
        if [[ -d /proc/$pid ]]; then
            echo "stop.sh: $(cat "/proc/$pid/comm") ($pid) ignored SIGTERM for 10 s: killing it" >&2
            kill -KILL "$pid" 2>/dev/null || true
        fi
    done
}

stop slurmd slurmctld  # together: each takes 1.5-2 s to shut down
stop munged            # last: the SLURM daemons authenticate through it until they exit

if [[ ${NMBATCH_SLURM_KEEP:-0} == 1 ]]; then
    rm -f "$DIR"/pids/*
    echo "stop.sh: kept $DIR" >&2
else
    rm -rf "$DIR"
fi
awk -v t0="$started" -v t1="$EPOCHREALTIME" \
    'BEGIN {printf "stop.sh: SLURM stopped in %.1f s\n", t1 - t0}' >&2
