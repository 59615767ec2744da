"""cgroup v2: one unified tree (most current hosts).

Files from Documentation/admin-guide/cgroup-v2.rst. OOM kills are read from
the ``oom_kill`` counter of memory.events, not ``oom`` (which also counts
reclaim failures that killed nothing: containerd and conmon-rs fixed false
reports there).
"""

from __future__ import annotations

import os
import signal
import time

from ..errors import LimitError
from ..spec import Limits
from .base import (
    Cgroup,
    CgroupHierarchy,
    CgroupStats,
    parent_name,
    read,
    read_int,
    read_keyed,
    write,
)

CPU_PERIOD_US = 100_000
WANTED = ("memory", "pids", "cpu", "cpuset")


class CgroupV2(CgroupHierarchy):
    """The unified hierarchy rooted at ``root`` (any directory laid out like it)."""

    version = 2

    def __init__(self, root: str = "/sys/fs/cgroup") -> None:
        self.root = root

    @property
    def parent(self) -> str:
        return os.path.join(self.root, parent_name())

    def available(self) -> list[str]:
        return (read(os.path.join(self.root, "cgroup.controllers")) or "").split()

    def describe(self) -> str:
        return f"cgroup v2 ({', '.join(self.available()) or 'no controllers'})"

    def _enable(self) -> str:
        """The controllers we use that the root offers, as cgroup.subtree_control wants them."""
        return " ".join(f"+{c}" for c in WANTED if c in self.available())

    def _parents_ready(self) -> bool:
        return os.path.isdir(self.parent) and bool(
            read(os.path.join(self.parent, "cgroup.subtree_control")) or not self._enable())

    def _prepare_parents(self) -> None:
        """Make ``sandbox/`` and delegate the controllers we use to its children."""
        os.makedirs(self.parent, exist_ok=True)
        enable = self._enable()
        if enable:
            write(os.path.join(self.root, "cgroup.subtree_control"), enable)
            write(os.path.join(self.parent, "cgroup.subtree_control"), enable)

    def _plan(self, sandbox_id: str, limits: Limits) -> "SandboxCgroupV2":
        return SandboxCgroupV2([os.path.join(self.parent, sandbox_id)])

    def open(self, paths: list[str]) -> "SandboxCgroupV2":
        return SandboxCgroupV2(paths)

    def parent_paths(self) -> list[str]:
        return [self.parent]

    def leftovers(self) -> list[str]:
        if not os.path.isdir(self.parent):
            return []
        return [os.path.join(self.parent, d) for d in sorted(os.listdir(self.parent))
                if os.path.isdir(os.path.join(self.parent, d))]


class SandboxCgroupV2(Cgroup):
    def __init__(self, paths: list[str]) -> None:
        super().__init__(paths)
        self.path = paths[0]
        self._sampled_peak = 0

    def _f(self, name: str) -> str:
        return os.path.join(self.path, name)

    def apply(self, limits: Limits) -> None:
        if limits.memory is not None:
            write(self._f("memory.max"), limits.memory)
            if os.path.exists(self._f("memory.swap.max")):
                write(self._f("memory.swap.max"), limits.memory_swap or 0)
        if limits.pids is not None:
            write(self._f("pids.max"), limits.pids)
        if limits.cpus is not None:
            write(self._f("cpu.max"), f"{round(limits.cpus * CPU_PERIOD_US)} {CPU_PERIOD_US}")
        if limits.cpuset is not None:
            write(self._f("cpuset.cpus"), limits.cpuset)

    def kill(self) -> None:
        if os.path.exists(self._f("cgroup.kill")):
            try:
                write(self._f("cgroup.kill"), 1)
                return
            except LimitError:
                pass
        freeze = self._f("cgroup.freeze")
        has_freeze = os.path.exists(freeze)
        if has_freeze:
            write(freeze, 1)
        for pid in self.pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if has_freeze:
            write(freeze, 0)

    def sample(self) -> None:
        current = read_int(self._f("memory.current"))
        if current is not None and current > self._sampled_peak:
            self._sampled_peak = current

    def stats(self) -> CgroupStats:
        cpu = read_keyed(self._f("cpu.stat"))
        events = read_keyed(self._f("memory.events"))
        pid_events = read_keyed(self._f("pids.events"))
        peak = read_int(self._f("memory.peak"))
        if peak is None:
            self.sample()
            peak = self._sampled_peak or None
        return CgroupStats(
            peak_memory=peak,
            cpu_user=cpu["user_usec"] / 1e6 if "user_usec" in cpu else None,
            cpu_system=cpu["system_usec"] / 1e6 if "system_usec" in cpu else None,
            cpu_total=cpu["usage_usec"] / 1e6 if "usage_usec" in cpu else None,
            pids_peak=read_int(self._f("pids.peak")),
            oom_kills=events.get("oom_kill", 0),
            pids_limited=pid_events.get("max", 0),
        )

    def wait_empty(self, timeout: float = 1.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if "populated 0" in (read(self._f("cgroup.events")) or "populated 0"):
                return True
            time.sleep(0.001)
        return False
