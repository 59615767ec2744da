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
