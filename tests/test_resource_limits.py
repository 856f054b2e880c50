"""Resource limits and watched disks, read from a fixture cgroup tree (billing_core.resources),
and the console's own metrics endpoint."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry, generate_latest

from billing_core.resources import (
    ResourceCollector,
    cgroup_dirs,
    cpu_limit_cores,
    machine_memory_bytes,
    memory_limit_bytes,
    parse_volumes,
    sqlite_volume,
)
from billing_core.settings import SettingsError
from dashboard.server import console_registry, host_from, start_metrics
from dashboard.settings import ConsoleSettings
from devstack.servers import free_port


def cgroup_tree(tmp_path: Path, *, own: dict[str, str], parent: dict[str, str] | None = None,
                path: str = "system.slice/billing.service") -> dict[str, Path]:
    """A /sys/fs/cgroup and a /proc/self/cgroup naming `path` under it."""
    root = tmp_path / "cgroup"
    own_dir = root / path
    own_dir.mkdir(parents=True)
    for name, text in own.items():
        (own_dir / name).write_text(text + "\n")
    for name, text in (parent or {}).items():
        (own_dir.parent / name).write_text(text + "\n")
    proc = tmp_path / "proc"
    (proc / "self").mkdir(parents=True)
    (proc / "self" / "cgroup").write_text(f"0::/{path}\n")
    return {"cgroup_root": root, "proc_root": proc}


def samples(collector: ResourceCollector) -> dict[tuple[str, tuple[str, ...]], float]:
    return {(s.name, tuple(s.labels.values())): s.value
            for family in collector.collect() for s in family.samples}


def test_a_containers_memory_limit_is_read_from_memory_max(tmp_path: Path) -> None:
    roots = cgroup_tree(tmp_path, own={"memory.max": "536870912"})
    assert memory_limit_bytes(**roots) == 536870912


def test_a_limit_set_on_a_parent_slice_counts_when_the_process_cgroup_has_none(
        tmp_path: Path) -> None:
    roots = cgroup_tree(tmp_path, own={"memory.max": "max", "cpu.max": "max 100000"},
                        parent={"memory.max": "1073741824", "cpu.max": "50000 100000"})
    assert memory_limit_bytes(**roots) == 1073741824
    assert cpu_limit_cores(**roots) == 0.5


def test_the_tightest_limit_along_the_path_wins(tmp_path: Path) -> None:
    roots = cgroup_tree(tmp_path, own={"memory.max": "2147483648", "cpu.max": "300000 100000"},
                        parent={"memory.max": "1073741824", "cpu.max": "200000 100000"})
    assert memory_limit_bytes(**roots) == 1073741824
    assert cpu_limit_cores(**roots) == 2.0


def test_without_any_limit_memory_is_the_machines_and_cpu_has_no_series(tmp_path: Path) -> None:
    roots = cgroup_tree(tmp_path, own={"memory.max": "max", "cpu.max": "max 100000"})
    assert memory_limit_bytes(**roots) == machine_memory_bytes()
    collector = ResourceCollector(**roots)
    names = {name for name, _ in samples(collector)}
    assert "process_memory_limit_bytes" in names
    assert "process_cpu_limit_cores" not in names  # the rules then measure against one core


def test_cgroup_v1_files_are_read_when_v2_has_none(tmp_path: Path) -> None:
    root = tmp_path / "cgroup"
    (root / "memory").mkdir(parents=True)
    (root / "cpu").mkdir()
    (root / "memory" / "memory.limit_in_bytes").write_text("268435456\n")
    (root / "cpu" / "cpu.cfs_quota_us").write_text("150000\n")
    (root / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    proc = tmp_path / "proc"
    (proc / "self").mkdir(parents=True)
    (proc / "self" / "cgroup").write_text("4:memory:/\n3:cpu,cpuacct:/\n")
    assert memory_limit_bytes(cgroup_root=root, proc_root=proc) == 268435456
    assert cpu_limit_cores(cgroup_root=root, proc_root=proc) == 1.5


def test_in_a_container_namespace_the_root_is_the_process_cgroup(tmp_path: Path) -> None:
    roots = cgroup_tree(tmp_path, own={}, path="")
    (roots["cgroup_root"] / "memory.max").write_text("104857600\n")
    (roots["proc_root"] / "self" / "cgroup").write_text("0::/\n")
    assert cgroup_dirs(**roots) == [roots["cgroup_root"]]
    assert memory_limit_bytes(**roots) == 104857600


def test_a_watched_volume_reports_its_size_and_free_space(tmp_path: Path) -> None:
    collector = ResourceCollector(volumes={"database": tmp_path, "gone": tmp_path / "missing"},
                                  cgroup_root=tmp_path, proc_root=tmp_path)
    found = samples(collector)
    stats = os.statvfs(tmp_path)
    assert found[("volume_size_bytes", ("database",))] == stats.f_blocks * stats.f_frsize
    assert 0 < found[("volume_available_bytes", ("database",))] <= found[
        ("volume_size_bytes", ("database",))]
    # A volume that is not there gives no sample rather than a wrong one.
    assert ("volume_size_bytes", ("gone",)) not in found


def test_watch_volumes_setting() -> None:
    assert parse_volumes("prometheus=/prometheus, db=/var/lib/billing") == {
        "prometheus": Path("/prometheus"), "db": Path("/var/lib/billing")}
    assert parse_volumes("") == {}
    for bad in ("prometheus", "=/x", "a b=/x", "x" * 40 + "=/x"):
        with pytest.raises(SettingsError, match="WATCH_VOLUMES"):
            parse_volumes(bad)


def test_the_embedded_databases_folder_is_its_volume() -> None:
    assert sqlite_volume("sqlite:///./var/billing.db") == Path("./var")
    assert sqlite_volume("sqlite:////srv/billing/billing.db?timeout=5") == Path("/srv/billing")
    assert sqlite_volume("sqlite:///:memory:") is None
    assert sqlite_volume("postgresql://u@h/db") is None


def test_the_console_serves_its_own_process_metrics_on_a_port_of_its_own() -> None:
    port = free_port()
    settings = ConsoleSettings.from_env({"CONSOLE_METRICS_PORT": str(port)})
    assert start_metrics(settings, host="127.0.0.1") == port
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    for name in ("process_resident_memory_bytes", "process_start_time_seconds",
                 "process_memory_limit_bytes", "console_build_info"):
        assert f"\n{name}" in text or text.startswith(name), name
    assert start_metrics(ConsoleSettings.from_env({"CONSOLE_METRICS_PORT": "0"}),
                         host="127.0.0.1") is None
    # A port already taken costs the metrics, never the console itself.
    assert start_metrics(settings, host="127.0.0.1") is None
    assert host_from(["streamlit", "run", "app.py", "--server.address", "0.0.0.0"]) == "0.0.0.0"
    assert host_from(["streamlit", "run", "app.py"]) == "127.0.0.1"


def test_the_console_registry_passes_the_exposition_format() -> None:
    registry: CollectorRegistry = console_registry()
    text = generate_latest(registry).decode()
    assert "console_build_info{version=" in text
