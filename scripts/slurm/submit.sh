#!/usr/bin/env bash
# Submit bids_dfc to SLURM: an array job (one task per participant), then the group level,
# which starts only when every task succeeded (--dependency=afterok).
#
# Usage: scripts/slurm/submit.sh [options] BIDS_DIR OUTPUT_DIR WORK_DIR [-- bids-dfc options]
# Options:
#   --subjects FILE    participant labels, one per line (default: BIDS_DIR/participants.tsv)
#   --concurrency K    at most K participants at a time (array throttle %K)
#   --cpus N           CPUs per participant task (default 1)
#   --mem SIZE         memory per participant task, sbatch syntax (default 4G)
#   --time T           time limit per task (default 12:00:00)
#   --partition P      partition (default: the cluster's default)
#   --logs DIR         where SLURM writes the job logs (default WORK_DIR/logs)
#   --no-group         do not submit the group level
# Options after "--" go to bids-dfc at both levels. The environment variable BIDS_DFC sets
# the command (e.g. "apptainer run --cleanenv -B /data bids_dfc.sif"; see docs/slurm.md).
# Prints "array_job=<id>" and "group_job=<id>" on standard output.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
subjects="" concurrency="" cpus=1 mem=4G time=12:00:00 partition="" logs="" group=1
while [[ $# -gt 0 ]]; do
    case "$1" in
        --subjects) subjects=$2; shift 2 ;;
        --concurrency) concurrency=$2; shift 2 ;;
        --cpus) cpus=$2; shift 2 ;;
        --mem) mem=$2; shift 2 ;;
        --time) time=$2; shift 2 ;;
        --partition) partition=$2; shift 2 ;;
        --logs) logs=$2; shift 2 ;;
        --no-group) group=0; shift ;;
        -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
        --) break ;;
        -*) echo "submit: unknown option $1 (see --help)" >&2; exit 2 ;;
        *) break ;;
    esac
done
if [[ $# -lt 3 ]]; then
    echo "usage: $0 [options] BIDS_DIR OUTPUT_DIR WORK_DIR [-- bids-dfc options]" >&2
    exit 2
fi
bids_dir=$(realpath "$1") output_dir=$(realpath -m "$2") work_dir=$(realpath -m "$3")
shift 3
[[ "${1:-}" == "--" ]] && shift

mkdir -p "$work_dir"
logs=$(realpath -m "${logs:-$work_dir/logs}")
mkdir -p "$logs"

# Freeze the participant list: task N always means the same participant, even on resubmission.
list="$work_dir/subjects.txt"
if [[ -n "$subjects" ]]; then
    grep -v '^[[:space:]]*$' "$subjects" | sed 's/^sub-//' > "$list"
elif [[ -f "$bids_dir/participants.tsv" ]]; then
    awk -F'\t' 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == "participant_id") c = i; next }
                c && $c != "" { sub(/^sub-/, "", $c); print $c }' "$bids_dir/participants.tsv" > "$list"
else
    find "$bids_dir" -mindepth 1 -maxdepth 1 -type d -name 'sub-*' -printf '%f\n' \
        | sed 's/^sub-//' | sort > "$list"
fi
n=$(grep -c . "$list" || true)
if [[ "$n" -eq 0 ]]; then
    echo "submit: no participants found (participants.tsv, sub-* folders or --subjects)" >&2
    exit 1
fi

common=(--parsable --time "$time")
[[ -n "$partition" ]] && common+=(--partition "$partition")
array="1-$n${concurrency:+%$concurrency}"

array_id=$(sbatch "${common[@]}" --array "$array" --cpus-per-task "$cpus" --mem "$mem" \
    --output "$logs/participant_%A_%a.log" \
    --export "ALL,BIDS_DFC_LEVEL=participant,BIDS_DFC_SUBJECTS=$list" \
    "$here/bids_dfc_array.sbatch" "$bids_dir" "$output_dir" "$work_dir" "$@")
array_id=${array_id%%;*}
echo "array_job=$array_id"
echo "submit: $n participants as array job $array_id ($array); logs in $logs" >&2

if [[ $group -eq 1 ]]; then
    group_id=$(sbatch "${common[@]}" --dependency "afterok:$array_id" --kill-on-invalid-dep=yes \
        --cpus-per-task "$cpus" --mem "$mem" --job-name bids_dfc_group \
        --output "$logs/group_%j.log" --export "ALL,BIDS_DFC_LEVEL=group" \
        "$here/bids_dfc_array.sbatch" "$bids_dir" "$output_dir" "$work_dir" "$@")
    group_id=${group_id%%;*}
    echo "group_job=$group_id"
    echo "submit: group level as job $group_id after every participant succeeded" >&2
fi
