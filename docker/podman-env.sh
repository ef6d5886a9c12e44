# Source this file (". docker/podman-env.sh") before the first podman command: it points
# podman at the settings in docker/ that work without systemd and on hybrid cgroups.
_bids_dfc_docker_dir=$(cd "$(dirname "${BASH_SOURCE[0]:-$0}")" && pwd)
export CONTAINERS_CONF="$_bids_dfc_docker_dir/containers.conf"
export CONTAINERS_STORAGE_CONF="$_bids_dfc_docker_dir/storage.conf"
unset _bids_dfc_docker_dir
