"""Who a pid is: its start time, so a recycled pid is never taken for the old process."""

from __future__ import annotations

import os


def process_start_time(pid: int) -> int | None:
    """Start time of ``pid`` in clock ticks since boot (proc(5) stat field 22)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    return int(data[data.rindex(b")") + 2:].split()[19])


def process_alive(pid: int | None, start_time: int | None) -> bool:
    """True when ``pid`` runs and is the same process that started at start_time."""
    if not pid:
        return False
    now = process_start_time(pid)
    return now is not None and (start_time is None or now == start_time)


_OWN_START: dict[int, int | None] = {}


def own_start_time() -> int | None:
    """process_start_time of this process, read once per process (forks re-read)."""
    pid = os.getpid()
    if pid not in _OWN_START:
        _OWN_START.clear()
        _OWN_START[pid] = process_start_time(pid)
    return _OWN_START[pid]


def die_with_parent(sig: int, parent: int) -> bool:
    """Get ``sig`` when the parent dies (PR_SET_PDEATHSIG); False if ``parent`` is gone already.

    For a helper process a multi-threaded owner started (a pytest-xdist
    worker's single-threaded twin): the prctl alone would miss a parent that
    died before it, whose child has been handed to another process since.
    The signal comes when the thread that started this process ends: the
    owner's main thread, for the owners that use this.
    """
    from .syscalls import set_pdeathsig

    set_pdeathsig(sig)
    return os.getppid() == parent
