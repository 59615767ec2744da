"""cgroup v1: one directory per controller hierarchy (this machine, and hybrid hosts).

Files from Documentation/admin-guide/cgroup-v1/: memory.txt, cpuacct.txt,
freezer-subsystem.txt, pids.txt, devices.txt, cpusets.txt; CFS bandwidth from
scheduler/sched-bwc.txt.
"""

from __future__ import annotations

import os
import signal
import time

from ..spec import Limits
from .base import DELEGATED, Cgroup, CgroupHierarchy, CgroupStats, parent_name, read, read_int, read_keyed, write
from .devices import DEVICE_RULES

CFS_PERIOD_US = 100_000
#: The controllers a delegating sandbox gets hierarchies of (not devices: every sandbox has
#: the same rules; not cpuset: a child needs its parent's cpus and mems copied in first).
DELEGABLE = ("memory", "pids", "cpu", "cpuacct", "freezer")


class CgroupV1(CgroupHierarchy):
    """v1 hierarchies keyed by controller name (co-mounted ones share a path)."""

    version = 1
    CONTROLLERS = ("memory", "pids", "freezer", "cpuacct", "devices", "cpu", "cpuset")
    ALWAYS = ("memory", "pids", "freezer", "cpuacct", "devices")

    def __init__(self, mounts: dict[str, str]) -> None:
        self.mounts = mounts
        self.controls_devices = "devices" in mounts
        self._checked_rules = False  # devices parent rules verified by this process

    def _parent(self, controller: str) -> str:
        return os.path.join(self.mounts[controller], parent_name())

    def _parents_ready(self) -> bool:
        if not all(os.path.isdir(self._parent(c)) for c in self.mounts):
            return False
        if not self._checked_rules and "devices" in self.mounts:  # made by an older version?
            if _device_rules(self._parent("devices")) != set(DEVICE_RULES):
                return False
            self._checked_rules = True
        return True

    def _prepare_parents(self) -> None:
        """Make each parent; children inherit its cpuset and device rules.

        The devices controller copies a parent's rules into each new child,
        so the container's device list is written once here, not per sandbox.
        """
        for controller in self.mounts:
            parent = self._parent(controller)
            os.makedirs(parent, exist_ok=True)
            if controller == "cpuset":
                _init_cpuset(self.mounts[controller], parent)
            if controller == "devices" and _device_rules(parent) != set(DEVICE_RULES):
                write(os.path.join(parent, "devices.deny"), "a")
                for rule in DEVICE_RULES:
                    write(os.path.join(parent, "devices.allow"), rule)
        self._checked_rules = True

    def describe(self) -> str:
        have = ", ".join(c for c in self.CONTROLLERS if c in self.mounts)
        return f"cgroup v1 ({have})"

    def _controllers_for(self, limits: Limits) -> list[str]:
        wanted = [c for c in self.ALWAYS if c in self.mounts]
        if limits.cpus is not None and "cpu" in self.mounts:
            wanted.append("cpu")
        if limits.cpuset is not None and "cpuset" in self.mounts:
            wanted.append("cpuset")
        return wanted

    def _devices_shared(self, controllers: list[str]) -> bool:
        """True when sandboxes join the devices parent itself (it has the hierarchy alone).

        Every sandbox gets the same device rules, which a new child would only
        copy from the parent: so no directory per sandbox there (one mkdir,
        join and rmdir less per run). Processes may sit in an inner v1 cgroup.
        """
        mount = self.mounts.get("devices")
        return "devices" in controllers and not any(
            self.mounts[c] == mount for c in controllers if c != "devices")

    def _plan(self, sandbox_id: str, limits: Limits, delegate: bool) -> "SandboxCgroupV1":
        by_controller: dict[str, str] = {}
        controllers = self._controllers_for(limits)
        shared = self._devices_shared(controllers)
        for controller in controllers:
            parent = self._parent(controller)
            by_controller[controller] = parent if shared and controller == "devices" \
                else os.path.join(parent, sandbox_id)
        cgroup = SandboxCgroupV1(by_controller, shared=[by_controller["devices"]] if shared else [])
        if delegate:
            cgroup.delegated = self._delegated(by_controller)
        return cgroup

    def _delegated(self, by_controller: dict[str, str]) -> list[tuple[str, str]]:
        """(host directory, name inside) of each hierarchy a delegating sandbox gets: those
        of its cgroup whose controllers are all DELEGABLE, named by their controllers."""
        found: dict[str, tuple[str, str]] = {}
        for controller, path in by_controller.items():
            mount = self.mounts[controller]
            together = sorted(c for c in self.CONTROLLERS if self.mounts.get(c) == mount)
            if mount not in found and set(together) <= set(DELEGABLE):
                found[mount] = (os.path.join(path, DELEGATED), ",".join(together))
        return list(found.values())

    def open(self, paths: list[str]) -> "SandboxCgroupV1":
        by_controller: dict[str, str] = {}
        for path in paths:
            for controller, mount in self.mounts.items():
                if os.path.dirname(os.path.dirname(path)) == mount:
                    by_controller.setdefault(controller, path)
        shared = []
        if "devices" not in by_controller and self._devices_shared([*by_controller, "devices"]):
            by_controller["devices"] = os.path.join(self.mounts["devices"], parent_name())
            shared.append(by_controller["devices"])
        return SandboxCgroupV1(by_controller, paths, shared)

    def parent_paths(self) -> list[str]:
        return [os.path.join(m, parent_name()) for m in sorted(set(self.mounts.values()))]

    def leftovers(self) -> list[str]:
        found = []
        for mount in sorted(set(self.mounts.values())):
            parent = os.path.join(mount, parent_name())
            if os.path.isdir(parent):
                found += [os.path.join(parent, d) for d in os.listdir(parent)
                          if os.path.isdir(os.path.join(parent, d))]
        return found


def _device_rules(path: str) -> set[str]:
    """The rules in devices.list, in the form devices.allow takes."""
    return set((read(os.path.join(path, "devices.list")) or "").splitlines())


def _init_cpuset(root: str, parent: str) -> None:
    for name in ("cpuset.cpus", "cpuset.mems"):
        write(os.path.join(parent, name), (read(os.path.join(root, name)) or "").strip())


class SandboxCgroupV1(Cgroup):
    version = 1

    def __init__(self, by_controller: dict[str, str], paths: list[str] | None = None,
                 shared: list[str] | None = None) -> None:
        shared = shared or []
        own = [p for p in dict.fromkeys(by_controller.values()) if p not in shared]
        super().__init__(paths or own, shared=shared)
        self.by_controller = by_controller

    def _file(self, controller: str, name: str) -> str | None:
        path = self.by_controller.get(controller)
        return os.path.join(path, name) if path else None

    def apply(self, limits: Limits) -> None:
        if (path := self.by_controller.get("memory")) and limits.memory is not None:
            write(os.path.join(path, "memory.limit_in_bytes"), limits.memory)
            memsw = os.path.join(path, "memory.memsw.limit_in_bytes")
            if os.path.exists(memsw):
                write(memsw, limits.memory + (limits.memory_swap or 0))
            elif not limits.memory_swap:
                write(os.path.join(path, "memory.swappiness"), 0)
        if (path := self.by_controller.get("pids")) and limits.pids is not None:
            write(os.path.join(path, "pids.max"), limits.pids)
        if (path := self.by_controller.get("cpu")) and limits.cpus is not None:
            write(os.path.join(path, "cpu.cfs_period_us"), CFS_PERIOD_US)
            write(os.path.join(path, "cpu.cfs_quota_us"), round(limits.cpus * CFS_PERIOD_US))
        if (path := self.by_controller.get("cpuset")) and limits.cpuset is not None:
            parent = os.path.dirname(path)
            write(os.path.join(path, "cpuset.mems"), (read(os.path.join(parent, "cpuset.mems")) or "").strip())
            write(os.path.join(path, "cpuset.cpus"), limits.cpuset)
        if (path := self.by_controller.get("devices")) and path not in self.shared \
                and _device_rules(path) != set(DEVICE_RULES):
            write(os.path.join(path, "devices.deny"), "a")
            for rule in DEVICE_RULES:
                write(os.path.join(path, "devices.allow"), rule)

    def _kill(self) -> None:
        state = self._file("freezer", "freezer.state")
        if state and os.path.exists(state):
            write(state, "FROZEN")
            deadline = time.monotonic() + 1.0
            while (read(state) or "").strip() == "FREEZING" and time.monotonic() < deadline:
                time.sleep(0.001)
        for _ in range(100):
            pids = self.pids()
            if not pids:
                break
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            if state and os.path.exists(state):
                break
        if state and os.path.exists(state):
            write(state, "THAWED")

    def stats(self) -> CgroupStats:
        usage_user = read_int(self._file("cpuacct", "cpuacct.usage_user") or "")
        usage_sys = read_int(self._file("cpuacct", "cpuacct.usage_sys") or "")
        usage = read_int(self._file("cpuacct", "cpuacct.usage") or "")
        oom = read_keyed(self._file("memory", "memory.oom_control") or "")
        events = read_keyed(self._file("pids", "pids.events") or "")
        return CgroupStats(
            peak_memory=read_int(self._file("memory", "memory.max_usage_in_bytes") or ""),
            memory_current=read_int(self._file("memory", "memory.usage_in_bytes") or ""),
            cpu_user=None if usage_user is None else usage_user / 1e9,
            cpu_system=None if usage_sys is None else usage_sys / 1e9,
            cpu_total=None if usage is None else usage / 1e9,
            pids_peak=read_int(self._file("pids", "pids.peak") or ""),
            oom_kills=oom.get("oom_kill", 0),
            pids_limited=events.get("max", 0),
        )
