"""A job's log in a Redis stream: one XADD per event, read by any number of followers.

Writers append with an approximate MAXLEN cap (store.LOG_MAXLEN), so a
runaway job cannot fill Redis. Followers read the history with XRANGE, then
block with XREAD for what comes next, until the `eof` entry; one that
attaches late (even after the job ended, until the log's TTL) sees it all.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from . import store
from .events import LogEvent
from .result import FINAL

BATCH = 1000
BLOCK_MS = 1000


class RedisLogSink:
    """Appends each event to ``sandbox:job:<id>:log``."""

    def __init__(self, conn: Any, job_id: str) -> None:
        self.conn = conn
        self.key = store.key(job_id, "log")

    def write(self, event: LogEvent) -> None:
        self.conn.xadd(self.key, event.to_fields(), maxlen=store.LOG_MAXLEN, approximate=True)


def history(conn: Any, job_id: str, after: str = "-") -> Iterator[tuple[str, LogEvent]]:
    """(entry id, event) for every entry after ``after``, in batches (XRANGE)."""
    log_key = store.key(job_id, "log")
    start = after if after == "-" else f"({after}"
    while True:
        batch = conn.xrange(log_key, min=start, max="+", count=BATCH)
        for entry_id, fields in batch:
            yield entry_id.decode(), LogEvent.from_fields(fields)
        if len(batch) < BATCH:
            return
        start = f"({batch[-1][0].decode()}"


def follow(conn: Any, job_id: str, *, follow: bool = True,
           timeout: float | None = None) -> Iterator[LogEvent]:
    """Every event of the job, live until its `eof` (or the history only, follow=False).

    While the log is quiet, checks that the job still has a live worker
    (store.reap), so a follower never waits forever on a dead one. Raises
    TimeoutError after ``timeout`` seconds without the eof.
    """
    store.require(conn, job_id)  # NoSuchJob early
    deadline = None if timeout is None else time.monotonic() + timeout
    last = "-"
    for last, event in history(conn, job_id):  # noqa: B007 - the last id is read after
        yield event
        if event.kind == "eof":
            return
    if not follow:
        return
    yield from _tail(conn, job_id, "0-0" if last == "-" else last, deadline)


def _tail(conn: Any, job_id: str, last: str, deadline: float | None) -> Iterator[LogEvent]:
    log_key = store.key(job_id, "log")
    while True:
        block = BLOCK_MS if deadline is None else max(1, min(BLOCK_MS, int((deadline - time.monotonic()) * 1000)))
        reply = conn.xread({log_key: last}, count=BATCH, block=block)
        for entry_id, fields in (reply[0][1] if reply else ()):
            last = entry_id.decode()
            event = LogEvent.from_fields(fields)
            yield event
            if event.kind == "eof":
                return
        if not reply:
            if _ended_without_eof(conn, job_id):
                return
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"job {job_id} did not end within the timeout")


def _ended_without_eof(conn: Any, job_id: str) -> bool:
    """Reap a dead worker's job; True if the job is final yet its eof is gone (trimmed/expired)."""
    store.reap(conn)
    if store.status_of(conn, job_id) not in FINAL:  # NoSuchJob: expired while followed
        return False
    return not conn.xrevrange(store.key(job_id, "log"), count=1)
