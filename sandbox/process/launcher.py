"""How a container's init is started: one interface, three routes, chosen here.

Every route implements ``Launcher.start(plan, fds, prepare) -> ContainerProcess``:

- ``launch_direct.DirectLauncher``: this process forks the init. For a
  single-threaded caller's first container (a one-shot ``sandbox run``
  starts no helper), and for its first Python target (the init, a copy of
  this process, forks the target).
- ``launch_zygote.ZygoteLauncher``: a small helper process (the zygote)
  forks it, or hands over a spare it made ahead. For later containers, and
  always for multi-threaded callers: fork() in a threaded process can
  deadlock the child.
- ``launch_held.HeldLauncher``: a spare from the zygote holds the container
  ready and this process (or its fork server) forks the Python target into
  it. For later Python targets: a large caller is forked once, not twice.
- ``launch_exec.ExecLauncher``: no new container; a process started in a
  running one (`sandbox exec`, a plan with ``enter``), forked here when
  this process may fork, else by the zygote.

``launcher_for`` is the one place that chooses. ``SANDBOX_SPAWN=direct`` or
``=zygote`` forces a route for commands, for tests and benchmarks.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from typing import Protocol

from ..errors import HostError
from ..plan import Plan
from .container import ContainerProcess, Target
from .fds import ChildFds

#: SANDBOX_SPAWN: how a single-threaded caller starts a command's container.
SPAWN_MODES = ("auto", "direct", "zygote")


class Launcher(Protocol):
    """One way to start a container's init."""

    def start(self, plan: Plan, fds: ChildFds, prepare: Callable[[], None]) -> ContainerProcess:
        """Start the init of ``plan``; ``fds`` are this process's copies of the
        child's ends, closed here, also on error. ``prepare`` makes what the
        init joins (its cgroup): before a fork, or while a spare mounts; if it
        raises, nothing was started."""
        ...


def launcher_for(plan: Plan, target: Target | None = None) -> Launcher:
    """The route for this plan from this process, now (see the module docstring)."""
    from .launch_direct import DirectLauncher, forked_here

    if plan.enter is not None:
        from .launch_exec import ExecLauncher

        return ExecLauncher(here=bool(_fork_here(spawn_mode(), 0)))
    here = _fork_here(spawn_mode(), forked_here())
    if target is None:
        if here:
            return DirectLauncher()
        from .launch_zygote import ZygoteLauncher

        return ZygoteLauncher()
    if here is None:
        raise HostError(
            f"cannot run a Python function in a sandbox from a process with "
            f"{len(os.listdir('/proc/self/task'))} threads: it would fork them",
            hint="run it from a single-threaded process, or run a command instead")
    from .spare import fits, spare_flags

    if not here and fits(plan, spare_flags(plan.unshared_first)):
        from .launch_held import HeldLauncher

        return HeldLauncher(target)
    return DirectLauncher(target)


def spawn_mode() -> str:
    """SANDBOX_SPAWN, checked."""
    mode = os.environ.get("SANDBOX_SPAWN", "auto")
    if mode not in SPAWN_MODES:
        raise HostError(f"SANDBOX_SPAWN={mode!r} is not a spawn mode",
                        hint=f"use one of: {', '.join(SPAWN_MODES)}")
    return mode


def _fork_here(mode: str, forked_before: int) -> bool | None:
    """Whether this process should fork the container itself; None if it must not.

    Forking is only safe from a single-threaded process (None otherwise).
    ``auto``: the first container of a process is forked here, every later
    one by the zygote, whose forks are of a small process with a spare made
    ahead: that pays for the helper's start after a few containers.
    """
    if not (single_threaded() and threading.current_thread() is threading.main_thread()):
        return None
    return mode == "direct" or (mode == "auto" and forked_before == 0)


def single_threaded() -> bool:
    """True when this process has exactly one thread (counted by the kernel).

    A thread Python already joined (a finished sandbox's monitor) can still
    be on its way out of the kernel for a moment: that is waited for, briefly.
    """
    if threading.active_count() != 1:
        return False
    for _ in range(EXITING_THREAD_POLLS):
        if len(os.listdir("/proc/self/task")) == 1:
            return True
        time.sleep(0.001)
    return False


EXITING_THREAD_POLLS = 50
