#!/usr/bin/env bash
# Stop a cluster made by start_cluster.sh: each daemon by the PID in its PID file.
#
# Usage: scripts/slurm/stop_cluster.sh DIR
# Sends SIGTERM to slurmd, slurmctld and munged (in that order), waits up to 10 s for each,
# then SIGKILL. Jobs still running on the node are ended by slurmd's shutdown.
set -uo pipefail

if [[ $# -ne 1 ]]; then
    echo "usage: $0 DIR" >&2
    exit 2
fi
dir="$1"
status=0
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
