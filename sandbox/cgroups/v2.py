"""cgroup v2: one unified tree (most current hosts).

Files from Documentation/admin-guide/cgroup-v2.rst. OOM kills are read from
the ``oom_kill`` counter of memory.events, not ``oom`` (which also counts
reclaim failures that killed nothing: containerd and conmon-rs fixed false
reports there). v2 has no devices controller: the device rules are an eBPF
program on the parent (``devices.DeviceFilter``), which every sandbox
cgroup under it inherits.
"""

from __future__ import annotations

import os
import signal
import time

from ..errors import LimitError
from ..spec import Limits
from .base import DELEGATED, Cgroup, CgroupHierarchy, CgroupStats, parent_name, read, read_int, read_keyed, write
from .devices import DeviceFilter

CPU_PERIOD_US = 100_000
WANTED = ("memory", "pids", "cpu", "cpuset")
#: The controllers a delegating sandbox's subtree gets (not cpuset: see v1.DELEGABLE).
DELEGABLE = ("memory", "pids", "cpu")
#: Where a delegating sandbox's own processes live: v2 lets no cgroup with controllers
#: enabled for its children hold processes, so they sit in a leaf beside the subtree.
MAIN = "main"


class CgroupV2(CgroupHierarchy):
    """The unified hierarchy rooted at ``root`` (any directory laid out like it)."""

    version = 2
    controls_devices = True  # the parent's eBPF filter, or no sandbox at all

    def __init__(self, root: str = "/sys/fs/cgroup", devices: DeviceFilter | None = None) -> None:
        self.root = root
        self.devices = devices or DeviceFilter()
        self._checked_devices = False  # the parent's device filter verified by this process

    @property
    def parent(self) -> str:
        return os.path.join(self.root, parent_name())

    def available(self) -> list[str]:
        return (read(os.path.join(self.root, "cgroup.controllers")) or "").split()

    def describe(self) -> str:
        return f"cgroup v2 ({', '.join(self.available()) or 'no controllers'})"

    def delegation(self) -> str:
        """Which of our controllers reach the sandboxes, for `sandbox doctor`."""
        wanted = [c for c in WANTED if c in self.available()]
        if not wanted:
            return "no controller to delegate"
        levels = [self.root] + ([self.parent] if os.path.isdir(self.parent) else [])
        for level in levels:
            control = os.path.join(level, "cgroup.subtree_control")
            if not set(wanted) <= set((read(control) or "").split()):
                return f"{', '.join(wanted)} not yet enabled in {control} (the next sandbox enables them)"
        return f"{', '.join(wanted)} delegated to sandboxes ({' and '.join(levels)})"

    def _enable(self) -> str:
        """The controllers we use that the root offers, as cgroup.subtree_control wants them."""
        return " ".join(f"+{c}" for c in WANTED if c in self.available())

    def _parents_ready(self) -> bool:
        if not os.path.isdir(self.parent) or not (
                read(os.path.join(self.parent, "cgroup.subtree_control")) or not self._enable()):
            return False
        if not self._checked_devices:  # made by an older version, without the filter?
            if not self.devices.attached(self.parent):
                return False
            self._checked_devices = True
        return True

    def _prepare_parents(self) -> None:
        """Make ``sandbox/``, delegate the controllers we use to its children and
        restrict their devices (before any sandbox can join)."""
        os.makedirs(self.parent, exist_ok=True)
        enable = self._enable()
        if enable:
            write(os.path.join(self.root, "cgroup.subtree_control"), enable)
            write(os.path.join(self.parent, "cgroup.subtree_control"), enable)
        if not self.devices.attached(self.parent):
            self.devices.attach(self.parent)
        self._checked_devices = True

    def _plan(self, sandbox_id: str, limits: Limits, delegate: bool) -> "SandboxCgroupV2":
        cgroup = SandboxCgroupV2([os.path.join(self.parent, sandbox_id)])
        if delegate:
            cgroup.delegated = [(os.path.join(cgroup.path, DELEGATED), "")]
        return cgroup

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
    version = 2

    def __init__(self, paths: list[str]) -> None:
        super().__init__(paths)
        self.path = paths[0]
        self._sampled_peak = 0

    def _f(self, name: str) -> str:
        return os.path.join(self.path, name)

    @property
    def procs_files(self) -> list[str]:
        if self.delegated:
            return [os.path.join(self.path, MAIN, "cgroup.procs")]
        return super().procs_files

    def _delegate(self, owner: tuple[int, int] | None) -> None:
        """The sandbox's processes in MAIN, the subtree beside it, both under the limits.
        Moving a process between them takes write access to this cgroup's cgroup.procs
        (their common ancestor's), which ``owner`` is given too."""
        offered = (read(self._f("cgroup.controllers")) or "").split()
        enable = " ".join(f"+{c}" for c in DELEGABLE if c in offered)
        if enable:
            write(self._f("cgroup.subtree_control"), enable)
        os.mkdir(self._f(MAIN))
        super()._delegate(owner)
        if enable:
            for directory, _ in self.delegated:
                write(os.path.join(directory, "cgroup.subtree_control"), enable)
        if owner is not None:
            os.chown(self._f("cgroup.procs"), *owner)

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

    def _kill(self) -> None:
        """SIGKILL every member at once with cgroup.kill (Linux 5.14+), else ``freeze_and_kill``."""
        if os.path.exists(self._f("cgroup.kill")):
            try:
                write(self._f("cgroup.kill"), 1)
                return
            except LimitError:
                pass
        self.freeze_and_kill()

    def freeze_and_kill(self, timeout: float = 1.0) -> None:
        """Kernels before 5.14: freeze the cgroup (Linux 5.2+), SIGKILL its members, thaw.

        A frozen member cannot fork, and what it forked in the meantime is born
        frozen; SIGKILL still ends frozen tasks. Members are listed again until
        each one listed has had its SIGKILL (a dying task stays listed a moment);
        ``remove`` kills again if one still slipped through.
        """
        freeze = self._f("cgroup.freeze")
        has_freeze = os.path.exists(freeze)
        if has_freeze:
            write(freeze, 1)
        killed: set[int] = set()
        deadline = time.monotonic() + timeout
        while (pids := set(self.pids()) - killed) and time.monotonic() < deadline:
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            killed |= pids
        if has_freeze:
            write(freeze, 0)

    def sample(self) -> None:
        current = read_int(self._f("memory.current"))
        if current is not None and current > self._sampled_peak:
            self._sampled_peak = current

    def stats(self) -> CgroupStats:
        cpu = read_keyed(self._f("cpu.stat"))
        # memory.events counts what happened below too: a delegating sandbox's OOM kills
        # are its own processes' (in MAIN), not those its subtree's limits made
        events = read_keyed(self._f(f"{MAIN}/memory.events" if self.delegated else "memory.events"))
        pid_events = read_keyed(self._f("pids.events"))
        peak = read_int(self._f("memory.peak"))
        if peak is None:
            self.sample()
            peak = self._sampled_peak or None
        return CgroupStats(
            peak_memory=peak,
            memory_current=read_int(self._f("memory.current")),
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
