#!/usr/bin/env bash
# Start a real single-node SLURM cluster (munge + slurmctld + slurmd) in a directory.
#
# For tests, benchmarks and trying the array script on a workstation: no systemd, no cgroups,
# no accounting database. Needs root and the Debian packages slurmctld, slurmd, slurm-client
# and munge. Everything (config, keys, state, logs, PID files) lives in DIR.
#
# Usage: scripts/slurm/start_cluster.sh DIR
# Environment (optional):
#   SLURM_CPUS        CPUs of the node (default: nproc)
#   SLURM_MEMORY_MB   RealMemory of the node in MB (default 4000)
#   SLURMCTLD_PORT    controller port (default 16817)
#   SLURMD_PORT       node daemon port (default 16818)
# Afterwards: `. DIR/env.sh` (sets SLURM_CONF) and use sbatch/squeue/scancel as usual;
# stop with scripts/slurm/stop_cluster.sh DIR.
set -euo pipefail

if [[ $# -ne 1 ]]; then
    echo "usage: $0 DIR" >&2
    exit 2
fi
for tool in munged mungekey slurmctld slurmd sinfo; do
    if ! command -v "$tool" >/dev/null && [[ ! -x "/usr/sbin/$tool" ]]; then
        echo "start_cluster: '$tool' not found; apt-get install -y slurmctld slurmd slurm-client munge" >&2
        exit 2
    fi
done
export PATH="$PATH:/usr/sbin"

mkdir -p "$1"
dir=$(cd "$1" && pwd)
cpus="${SLURM_CPUS:-$(nproc)}"
memory="${SLURM_MEMORY_MB:-4000}"
ctld_port="${SLURMCTLD_PORT:-16817}"
slurmd_port="${SLURMD_PORT:-16818}"

if [[ -f "$dir/slurmctld.pid" ]] && kill -0 "$(cat "$dir/slurmctld.pid")" 2>/dev/null; then
    echo "start_cluster: a cluster is already running in $dir (stop_cluster.sh $dir)" >&2
    exit 1
fi

# munged refuses a socket below a folder that not everybody may search.
path="$dir"
while [[ "$path" != / ]]; do
    if [[ $(( 0$(stat -c %a "$path") & 01 )) -eq 0 ]]; then
        echo "start_cluster: munged needs every folder above its socket searchable by all;" \
            "$path is not (chmod o+x $path, or use another DIR)" >&2
        exit 1
    fi
    path=$(dirname "$path")
done
mkdir -p "$dir/munge" "$dir/state" "$dir/spool" "$dir/log"
chmod 755 "$dir/munge"

cat > "$dir/slurm.conf" <<CONF
ClusterName=bidsdfc
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$dir/munge/munge.sock
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
MpiDefault=none
ReturnToService=2
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$memory State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
CONF

key="$dir/munge/munge.key"
if [[ ! -f "$key" ]]; then
    mungekey -c -k "$key"
fi
chmod 400 "$key"
munged --key-file="$key" --socket="$dir/munge/munge.sock" --pid-file="$dir/munged.pid" \
    --log-file="$dir/log/munged.log" --seed-file="$dir/munge/munge.seed"

slurmctld -f "$dir/slurm.conf"
slurmd -f "$dir/slurm.conf" -N localhost

printf 'export SLURM_CONF=%q\n' "$dir/slurm.conf" > "$dir/env.sh"
export SLURM_CONF="$dir/slurm.conf"

# Ready when the node accepts jobs.
for _ in $(seq 1 120); do
    state=$(sinfo -h -N -o '%T' 2>/dev/null | head -n 1 || true)
    if [[ "$state" == idle* || "$state" == mixed* || "$state" == allocated* ]]; then
        echo "start_cluster: node localhost is $state ($cpus CPUs, $memory MB); SLURM_CONF=$dir/slurm.conf"
        exit 0
    fi
    sleep 0.25
done
echo "start_cluster: the node did not come up within 30 s; see $dir/log/" >&2
exit 1
