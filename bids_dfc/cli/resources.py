"""The CPUs this process may use: the default ``--n-jobs`` of ``bids-dfc-dcc`` and the default
``--nprocs`` of ``bids-dfc``.

:func:`usable_cpus` is the smallest of the limits that apply, at least 1:

* the CPU affinity mask (``os.sched_getaffinity``: ``taskset``, a cpuset, a batch system's
  binding), or ``os.cpu_count()`` where there is no mask (not Linux);
* the CPU bandwidth quota of this process's cgroups, ``quota / period`` rounded up (cgroup v2
  ``cpu.max``, cgroup v1 ``cpu.cfs_quota_us`` / ``cpu.cfs_period_us``; the tightest of this
  process's cgroup and its ancestors, as found from ``/proc/self/cgroup``);
* ``SLURM_CPUS_PER_TASK`` when it is set (``sbatch --cpus-per-task``).

Only the standard library is imported here: both commands call it while parsing options.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path

#: where the cgroup file systems are mounted (v2; v1 controllers in sub-folders)
CGROUP_ROOT = Path("/sys/fs/cgroup")
#: the cgroups this process belongs to (``hierarchy:controllers:path`` lines)
SELF_CGROUP = Path("/proc/self/cgroup")


def cpu_model(default: str = "unknown", cpuinfo: Path | str = "/proc/cpuinfo") -> str:
    """The CPU's model name (``/proc/cpuinfo``), ``default`` where it cannot be read; the
    benchmarks and the pinned tests record it with their figures."""
    try:
        for line in Path(cpuinfo).read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return default


def affinity_cpus() -> int:
    """CPUs in this process's affinity mask (``os.cpu_count()`` without one)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


def _ancestors(root: Path, rel: str) -> list[Path]:
    """``root/rel`` and its parents up to ``root`` (a container sees its own cgroup as the
    root of the mount, while /proc/self/cgroup may still name the host's path)."""
    folder = root / rel.strip().lstrip("/")
    return [d for d in [folder, *folder.parents] if d.is_relative_to(root)]


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None


def _quota_v2(folder: Path) -> float | None:
    """CPUs allowed by ``cpu.max`` (``"quota period"``, or ``"max ..."`` for no limit)."""
    text = _read(folder / "cpu.max")
    fields = text.split() if text else []
    if not fields or fields[0] == "max":
        return None
    try:
        quota = int(fields[0])
        period = int(fields[1]) if len(fields) > 1 else 100_000
    except ValueError:
        return None
    return quota / period if quota > 0 and period > 0 else None


def _quota_v1(folder: Path) -> float | None:
    """CPUs allowed by ``cpu.cfs_quota_us`` / ``cpu.cfs_period_us`` (quota -1: no limit)."""
    quota, period = _read(folder / "cpu.cfs_quota_us"), _read(folder / "cpu.cfs_period_us")
    try:
        q, p = int(quota or ""), int(period or "")
    except ValueError:
        return None
    return q / p if q > 0 and p > 0 else None


def cgroup_cpus(root: Path | str = CGROUP_ROOT, self_cgroup: Path | str = SELF_CGROUP
                ) -> float | None:
    """CPUs (a fraction: ``quota / period``) allowed by the tightest CPU bandwidth limit of
    this process's cgroups, v2 or v1, or None when there is none.

    ``root`` is where the cgroup file systems are mounted and ``self_cgroup`` the process's
    membership file; both can be pointed elsewhere (tests write their own).
    """
    root = Path(root)
    text = _read(Path(self_cgroup))
    if text is None:
        return None
    limits = []
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, rel = parts
        if controllers == "":  # cgroup v2 (unified hierarchy)
            limits += [_quota_v2(d) for d in _ancestors(root, rel)]
        elif "cpu" in controllers.split(","):  # v1: mounted as cpu,cpuacct or cpu
            for mount in dict.fromkeys([root / controllers, root / "cpu"]):
                limits += [_quota_v1(d) for d in _ancestors(mount, rel)]
    found = [v for v in limits if v is not None]
    return min(found) if found else None


def slurm_cpus(environ: Mapping[str, str] | None = None) -> int | None:
    """``SLURM_CPUS_PER_TASK`` as a positive integer, or None when unset or not one."""
    value = (os.environ if environ is None else environ).get("SLURM_CPUS_PER_TASK", "")
    try:
        n = int(value.strip())
    except ValueError:
        return None
    return n if n > 0 else None


def usable_cpus(root: Path | str = CGROUP_ROOT, self_cgroup: Path | str = SELF_CGROUP,
                environ: Mapping[str, str] | None = None) -> int:
    """The CPUs this process may use: the smallest of its affinity mask, its cgroup CPU quota
    (rounded up) and ``SLURM_CPUS_PER_TASK``, those that apply; at least 1."""
    limits = [affinity_cpus()]
    quota = cgroup_cpus(root, self_cgroup)
    if quota is not None:
        limits.append(math.ceil(quota - 1e-9))
    slurm = slurm_cpus(environ)
    if slurm is not None:
        limits.append(slurm)
    return max(1, min(limits))
