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


def namespace_ids(ns_dir: str | int, names: tuple[str, ...]) -> tuple[tuple[int, int], ...]:
    """(device, inode) of each namespace file ``names`` in a /proc/PID/ns directory
    (a path, or an fd opened on it): equal pairs are the same namespace."""
    ids = []
    for name in names:
        if isinstance(ns_dir, int):
            st = os.stat(name, dir_fd=ns_dir)
        else:
            st = os.stat(os.path.join(ns_dir, name))
        ids.append((st.st_dev, st.st_ino))
    return tuple(ids)


def init_of(pids: list[int]) -> int | None:
    """Which of ``pids`` is pid 1 of a pid namespace one level below ours (a sandbox's
    init), by the NSpid lines of /proc/PID/status; None if none is."""
    depth = len(_nspids("self"))
    for pid in pids:
        nspids = _nspids(str(pid))
        if len(nspids) == depth + 1 and nspids[-1] == "1":
            return pid
    return None


def _nspids(pid: str) -> list[str]:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("NSpid:"):
                    return line.split()[1:]
    except OSError:
        pass
    return []
