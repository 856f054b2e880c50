"""What a process may use, read at scrape time: its memory and CPU limits, and the disks it
writes to. Every process (engine, alerts process, console) registers one `ResourceCollector`.

Limits come from the cgroup the process runs in (cgroup v2: `memory.max`, `cpu.max`; v1's
`memory.limit_in_bytes` and `cpu.cfs_quota_us` are read when v2's files are absent). The
effective limit is the tightest along the path from the process's cgroup up to the root, so a
limit set on a parent slice counts too. The filesystem roots are parameters (`cgroup_root`,
`proc_root`), so tests run the collector on a fixture tree, as prometheus_client's own
ProcessCollector does with `proc=`.

Exported (base units, no id in any label):

- `process_memory_limit_bytes`: the memory limit, or the machine's memory when there is none;
- `process_cpu_limit_cores`: the CPU limit in cores, only when one is set (the rules divide by
  one core when the series is absent);
- `volume_size_bytes{volume}`, `volume_available_bytes{volume}`: each watched volume's size and
  what is left for an unprivileged writer (`df`'s "Avail"), for the volumes a process was told
  about (`volume` is the operator's short name: `database`, `prometheus`).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry

from billing_core.settings import SettingsError

CGROUP_ROOT = Path("/sys/fs/cgroup")
PROC_ROOT = Path("/proc")
_UNLIMITED = 2**60  # cgroup v1 writes a huge number for "no limit"


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None


def cgroup_dirs(*, cgroup_root: Path = CGROUP_ROOT, proc_root: Path = PROC_ROOT,
                pid: str = "self") -> list[Path]:
    """The process's cgroup directory and its ancestors up to the root, innermost first.

    In a container with its own cgroup namespace `/proc/self/cgroup` says `0::/` and the root is
    the container's cgroup; on a host it names the path under the root."""
    relative = ""
    text = _read(proc_root / pid / "cgroup") or ""
    for line in text.splitlines():
        hierarchy, _, path = line.partition("::")
        if hierarchy == "0":
            relative = path.strip("/")
            break
    dirs = []
    current = cgroup_root / relative if relative else cgroup_root
    while True:
        dirs.append(current)
        if current == cgroup_root or cgroup_root not in current.parents:
            break
        current = current.parent
    return dirs


def _memory_limit_in(directory: Path) -> float | None:
    raw = _read(directory / "memory.max")
    if raw is None:
        raw = _read(directory / "memory" / "memory.limit_in_bytes")  # cgroup v1
    if raw is None or not raw.isdigit() or int(raw) >= _UNLIMITED:
        return None
    return float(raw)


def _cpu_limit_in(directory: Path) -> float | None:
    raw = _read(directory / "cpu.max")  # "<quota> <period>" or "max <period>"
    if raw is not None:
        quota, _, period = raw.partition(" ")
        if quota.isdigit() and period.isdigit() and int(period) > 0:
            return int(quota) / int(period)
        return None
    quota_v1 = _read(directory / "cpu" / "cpu.cfs_quota_us")
    period_v1 = _read(directory / "cpu" / "cpu.cfs_period_us")
    if quota_v1 and period_v1 and quota_v1.isdigit() and period_v1.isdigit() and int(period_v1):
        return int(quota_v1) / int(period_v1)
    return None


def _tightest(values: Iterable[float | None]) -> float | None:
    known = [value for value in values if value is not None]
    return min(known) if known else None


def machine_memory_bytes() -> float:
    try:
        return float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError):
        return math.nan


def memory_limit_bytes(*, cgroup_root: Path = CGROUP_ROOT, proc_root: Path = PROC_ROOT) -> float:
    """The tightest cgroup memory limit, or the machine's memory when no cgroup sets one."""
    dirs = cgroup_dirs(cgroup_root=cgroup_root, proc_root=proc_root)
    limit = _tightest(_memory_limit_in(directory) for directory in dirs)
    return limit if limit is not None else machine_memory_bytes()


def cpu_limit_cores(*, cgroup_root: Path = CGROUP_ROOT,
                    proc_root: Path = PROC_ROOT) -> float | None:
    """The tightest cgroup CPU limit in cores, or None when no cgroup sets one."""
    dirs = cgroup_dirs(cgroup_root=cgroup_root, proc_root=proc_root)
    return _tightest(_cpu_limit_in(directory) for directory in dirs)


def parse_volumes(text: str | None) -> dict[str, Path]:
    """`WATCH_VOLUMES`: `name=path` pairs separated by commas (`prometheus=/prometheus`)."""
    volumes: dict[str, Path] = {}
    for item in (text or "").split(","):
        item = item.strip()
        if not item:
            continue
        name, sep, path = item.partition("=")
        name, path = name.strip(), path.strip()
        if not sep or not name or not path:
            raise SettingsError(f"WATCH_VOLUMES: {item!r} is not name=path")
        if not name.replace("-", "").replace("_", "").isalnum() or len(name) > 32:
            raise SettingsError(f"WATCH_VOLUMES: {name!r} is not a short name (a-z, 0-9, -, _)")
        volumes[name] = Path(path)
    return volumes


class ResourceCollector(Collector):
    """Limits and watched volumes, computed at each scrape (see the module docstring)."""

    def __init__(self, *, volumes: Mapping[str, Path] | None = None,
                 cgroup_root: Path = CGROUP_ROOT, proc_root: Path = PROC_ROOT,
                 registry: CollectorRegistry | None = None) -> None:
        self.volumes = dict(volumes or {})
        self.cgroup_root = cgroup_root
        self.proc_root = proc_root
        if registry is not None:
            registry.register(self)

    def watch(self, name: str, path: Path) -> None:
        self.volumes[name] = path

    def collect(self) -> Iterator[GaugeMetricFamily]:
        roots = {"cgroup_root": self.cgroup_root, "proc_root": self.proc_root}
        memory = GaugeMetricFamily(
            "process_memory_limit_bytes",
            "Memory limit of the process's cgroup, or the machine's memory when unlimited.")
        memory.add_metric([], memory_limit_bytes(**roots))
        yield memory
        cores = cpu_limit_cores(**roots)
        if cores is not None:
            yield GaugeMetricFamily(
                "process_cpu_limit_cores",
                "CPU limit of the process's cgroup, in cores (absent when unlimited).",
                value=cores)
        size = GaugeMetricFamily("volume_size_bytes", "Size of a watched volume.",
                                 labels=["volume"])
        available = GaugeMetricFamily(
            "volume_available_bytes",
            "Space left on a watched volume for an unprivileged writer.", labels=["volume"])
        for name, path in sorted(self.volumes.items()):
            try:
                stats = os.statvfs(path)
            except OSError:
                continue  # not mounted yet, or gone: no sample rather than a wrong one
            size.add_metric([name], float(stats.f_blocks * stats.f_frsize))
            available.add_metric([name], float(stats.f_bavail * stats.f_frsize))
        yield size
        yield available


def sqlite_volume(database_url: str) -> Path | None:
    """The folder holding an embedded (SQLite) database file, or None for a server database."""
    scheme, sep, rest = database_url.partition(":///")
    if not sep or not scheme.startswith("sqlite"):
        return None
    file = rest.split("?", 1)[0]
    if not file or file == ":memory:":
        return None
    return Path(file).parent if Path(file).parent != Path("") else Path(".")
