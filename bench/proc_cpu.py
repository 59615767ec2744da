"""CPU seconds and page faults from /proc, for the benchmarks' "where the CPU goes" lines.

Shared by bench/jobs.py and the conftest bench/pytest_overhead.py writes
(which imports it from this directory).
"""

from __future__ import annotations

import os

TICK = os.sysconf("SC_CLK_TCK")


def machine_busy_seconds() -> float:
    """CPU time the whole machine spent busy (not idle, iowait or steal), all cores."""
    with open("/proc/stat") as f:
        ticks = [int(v) for v in f.readline().split()[1:]]
    return (sum(ticks[:8]) - ticks[3] - ticks[4] - ticks[7]) / TICK


def cpu_seconds(pid: int, *, children: bool) -> float:
    """A process's user+system CPU, with that of the children it reaped if ``children``."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return sum(int(v) for v in fields[11:15 if children else 13]) / TICK


def page_faults(pid: int, *, children: bool) -> int:
    """A process's minor page faults (copy-on-write, first touch), with its reaped
    children's if ``children``: on small VMs each costs microseconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[7]) + (int(fields[8]) if children else 0)


def children_named(name: str, pid: int | str = "self") -> list[int]:
    """The processes named ``name`` among ``pid``'s children (sandbox-zygote, sandbox-forker)."""
    found = []
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/children") as f:
            for child in f.read().split():
                try:
                    with open(f"/proc/{child}/comm") as c:
                        if c.read().strip() == name:
                            found.append(int(child))
                except OSError:
                    pass  # it exited meanwhile
    return found


def twins(pid: int | str = "self") -> list[int]:
    """The single-threaded twins among ``pid``'s children (pytest_sandbox.twin): a
    pytest-xdist worker's, which fork its marked tests."""
    found = []
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/children") as f:
            for child in f.read().split():
                try:
                    with open(f"/proc/{child}/cmdline", "rb") as c:
                        if b"pytest_sandbox.twin" in c.read():
                            found.append(int(child))
                except OSError:
                    pass  # it exited meanwhile
    return found
