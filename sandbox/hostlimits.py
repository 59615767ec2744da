"""What this host will give a sandbox less of than its limits ask: said once, never silently.

``--cpus 999`` on a 2-CPU host is a CFS quota the kernel accepts and can never
grant; ``--ulimit nofile=999999999`` above this process's hard limit is lowered
to it (raising needs CAP_SYS_RESOURCE). Neither fails the run; the CLI prints
these notes on stderr and a job writes them to its log (``capped``). A
``--cpuset`` naming CPUs this host does not have is an error (``check``).
"""

from __future__ import annotations

import os
import resource

from .errors import SpecError
from .spec import Limits


def capped(limits: Limits) -> list[str]:
    """One line per limit this host caps, saying what the sandbox gets instead."""
    notes = []
    cpus = host_cpus(limits.cpuset)
    if limits.cpus is not None and limits.cpus > cpus:
        where = f"cpuset {limits.cpuset}" if limits.cpuset else "this host"
        notes.append(f"cpus {limits.cpus:g} is more than the {cpus} CPUs of {where}: "
                     f"the sandbox gets at most {cpus}")
    from .process.execute import RLIMITS

    for ulimit in limits.ulimits:
        _, hard = resource.getrlimit(RLIMITS[ulimit.name])
        if hard != resource.RLIM_INFINITY and max(ulimit.soft, ulimit.hard) > hard:
            asked = ulimit.soft if ulimit.soft == ulimit.hard else f"{ulimit.soft}:{ulimit.hard}"
            notes.append(f"ulimit {ulimit.name}={asked} is above this host's hard limit "
                         f"{hard}: capped at {hard}")
    return notes


def check(limits: Limits) -> None:
    """SpecError for what this host cannot do at all: CPUs in --cpuset it does not have."""
    if limits.cpuset is None:
        return
    allowed = os.sched_getaffinity(0)
    if not cpu_numbers(limits.cpuset) <= allowed:
        raise SpecError("cpuset", limits.cpuset, f"CPUs of this host: {_ranges(sorted(allowed))}")


def cpu_numbers(cpuset: str) -> set[int]:
    """The CPUs ``0-2,5`` names."""
    cpus: set[int] = set()
    for part in cpuset.split(","):
        first, _, last = part.partition("-")
        cpus.update(range(int(first), int(last or first) + 1))
    return cpus


def _ranges(cpus: list[int]) -> str:
    runs: list[list[int]] = []
    for cpu in cpus:
        if runs and cpu == runs[-1][1] + 1:
            runs[-1][1] = cpu
        else:
            runs.append([cpu, cpu])
    return ",".join(f"{a}-{b}" if a != b else str(a) for a, b in runs)


def host_cpus(cpuset: str | None = None) -> int:
    """How many CPUs a sandbox can run on: those of ``cpuset``, else this process's."""
    return len(cpu_numbers(cpuset)) if cpuset else len(os.sched_getaffinity(0))
