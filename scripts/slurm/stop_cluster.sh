#!/usr/bin/env bash
# Stop a cluster made by start_cluster.sh: each daemon by the PID in its PID file.
#
# Usage: scripts/slurm/stop_cluster.sh DIR
# Cancels every job still queued or running (slurmd's shutdown alone leaves a running job's
# slurmstepd behind), waits up to 30 s for the queue to empty, then sends SIGTERM to slurmd,
# slurmctld and munged (in that order), waits up to 10 s for each, then SIGKILL.
set -uo pipefail

if [[ $# -ne 1 ]]; then
    echo "usage: $0 DIR" >&2
    exit 2
fi
dir="$1"
status=0
if [[ -f "$dir/slurm.conf" && -f "$dir/slurmctld.pid" ]]; then
    export SLURM_CONF="$dir/slurm.conf"
    jobs=$(squeue -h -o '%A' 2>/dev/null | sort -u)
    if [[ -n "$jobs" ]]; then
        # shellcheck disable=SC2086
        scancel --full $jobs 2>/dev/null
        for _ in $(seq 1 120); do
            [[ -z "$(squeue -h -o '%A' 2>/dev/null)" ]] && break
            sleep 0.25
        done
    fi
fi
for daemon in slurmd slurmctld munged; do
    pidfile="$dir/$daemon.pid"
    [[ -f "$pidfile" ]] || continue
    pid=$(cat "$pidfile")
    if [[ -z "$pid" ]] || ! kill -0 "$pid" 2>/dev/null; then
        rm -f "$pidfile"
        continue
    fi
    kill -TERM "$pid"
    for _ in $(seq 1 40); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.25
    done
    if kill -0 "$pid" 2>/dev/null; then
        echo "stop_cluster: $daemon ($pid) ignored SIGTERM; sending SIGKILL" >&2
        kill -KILL "$pid" || status=1
    fi
    rm -f "$pidfile"
done
exit $status
