"""A job's log in a Redis stream: an XADD per event, read by any number of followers.

Writers append with an approximate MAXLEN cap (store.LOG_MAXLEN), so a
runaway job cannot fill Redis. Followers read the history with XRANGE, then
block with XREAD for what comes next, until the `eof` entry; one that
attaches late (even after the job ended, until the log's TTL) sees it all.

Across a Redis restart or a lost connection, each line is stored and read
once. The worker names each entry by its sequence number (``0-<seq>``), so a
write retried after a lost reply is refused as a duplicate, and the `eof`
(``*``: the server's clock, always later) fences off anything a worker that
lost its job still sends. Followers reconnect and go on from the last entry
they saw.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from . import store
from .errors import QueueUnavailable
from .events import LogEvent
from .result import FINAL

BATCH = 1000
BLOCK_MS = 1000
#: a follower waits this long for a lost Redis to come back before it gives up
RECONNECT_FOR = 60.0
#: a writer tries again this often while Redis cannot be reached
RETRY_DELAY = 0.1
#: a held event is written between renewals once it has waited this long (seconds)
HOLD_AT_LEAST = 0.05
log = logging.getLogger("sandbox.jobs")


def connection_lost() -> tuple[type[BaseException], ...]:
    """The redis-py errors that mean the server did not answer (down, restarting, cut off)."""
    import redis

    return (redis.ConnectionError, redis.TimeoutError)


class RedisLogSink:
    """Appends each event to ``sandbox:job:<id>:log`` as entry ``0-<seq>``, exactly once.

    While Redis cannot be reached it tries again (the job's output waits, as
    a full pipe makes it wait) until ``give_up()`` says the job is no longer
    this writer's; from then on, and once the log has its `eof`, events are
    dropped. Without ``give_up`` a lost connection raises.

    With ``hold``, only output is written at once, together with every event
    held before it (one round trip): the others (a step's start and end, notes)
    wait for the next output, for the job's end (``take_held``: store.finish
    writes them in its own round trip) or for ``flush_stale``, which the
    worker's lease thread calls every few hundred milliseconds. A short step
    then costs one write instead of three; a silent step's start reaches
    followers at most about a lease renewal late.
    """

    def __init__(self, conn: Any, job_id: str, *, give_up: Callable[[], bool] | None = None,
                 hold: bool = False) -> None:
        self.conn = conn
        self.job_id = job_id
        self.key = store.key(job_id, "log")
        self.give_up = give_up
        self.hold = hold
        self.fenced = False  # the log has an eof someone else wrote: write nothing more
        self._held: list[LogEvent] = []
        self._held_since = 0.0
        self._lock = threading.Lock()

    def write(self, event: LogEvent) -> None:
        with self._lock:
            self._held.append(event)
            if self.hold and event.kind != "out":
                if len(self._held) == 1:
                    self._held_since = time.monotonic()
                return
            self._write_held()

    def flush_stale(self, conn: Any = None, older_than: float = HOLD_AT_LEAST) -> None:
        """Write what has been held for ``older_than`` seconds, through ``conn`` (a client
        with a short timeout: a lease thread's, which calls this after a renewal): one try,
        never waiting for Redis or for the job's thread."""
        if not self._lock.acquire(blocking=False):
            return  # the job's thread is writing: what is held goes with it
        try:
            if self.fenced:
                self._held.clear()
            elif self._held and time.monotonic() - self._held_since >= older_than:
                self._append(self._held, conn or self.conn)
                self._held.clear()
        except connection_lost():
            pass  # the job's thread tries again with its next write, or the finish does
        finally:
            self._lock.release()

    def take_held(self) -> list[tuple[str, dict[str, bytes | str]]]:
        """The held events as (entry id, fields), no longer held: for store.finish to write."""
        with self._lock:
            held, self._held = self._held, []
        return [] if self.fenced else [(store.log_entry(e.seq), e.to_fields()) for e in held]

    def _write_held(self) -> None:
        while not self.fenced and not (self.give_up is not None and self.give_up()):
            try:
                self._append(self._held, self.conn)
                break
            except connection_lost():
                if self.give_up is None:
                    raise
                time.sleep(RETRY_DELAY)
        self._held.clear()

    def _append(self, events: list[LogEvent], conn: Any) -> None:
        import redis

        if len(events) == 1:
            try:
                replies = [self._xadd(conn, events[0])]
            except redis.ResponseError as exc:
                replies = [exc]
        else:
            with conn.pipeline(transaction=False) as pipe:
                for event in events:
                    self._xadd(pipe, event)
                replies = pipe.execute(raise_on_error=False)
        for reply in replies:
            if isinstance(reply, redis.ResponseError):
                if not store.refused_as_written(reply):
                    raise reply
                self.fenced = self.fenced or not self._ours_newest(conn)

    def _xadd(self, client: Any, event: LogEvent) -> Any:
        return store.append_log(client, self.job_id, store.log_entry(event.seq), event.to_fields())

    def _ours_newest(self, conn: Any) -> bool:
        """After a refused XADD: True if the newest entry is still one of the worker's
        (``0-<seq>``: the refused one went through before, on a retry), False if it is an
        eof that someone else wrote (its id is the server's clock)."""
        newest = conn.xrevrange(self.key, count=1)
        return bool(newest) and newest[0][0].startswith(b"0-")


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
    TimeoutError after ``timeout`` seconds without the eof. A lost Redis is
    waited for (RECONNECT_FOR seconds, then QueueUnavailable), and reading
    goes on after the last event seen: none is missed or seen twice.
    """
    store.require(conn, job_id)  # NoSuchJob early
    reader = _Reader(conn, job_id, None if timeout is None else time.monotonic() + timeout)
    while True:
        try:
            yield from reader.read(follow)
            return
        except connection_lost() as exc:
            reader.wait_for_redis(exc)


class _Reader:
    """One follower's place in a job's log (the last entry id it yielded) across reconnects."""

    def __init__(self, conn: Any, job_id: str, deadline: float | None) -> None:
        self.conn, self.job_id, self.deadline = conn, job_id, deadline
        self.last = "-"
        self.lost_since: float | None = None
        self.delay = RETRY_DELAY

    def read(self, follow: bool) -> Iterator[LogEvent]:
        for entry_id, event in history(self.conn, self.job_id, self.last):
            self._reached()
            self.last = entry_id
            yield event
            if event.kind == "eof":
                return
        self._reached()
        if follow:
            yield from self._tail()

    def _tail(self) -> Iterator[LogEvent]:
        log_key = store.key(self.job_id, "log")
        while True:
            reply = self.conn.xread({log_key: "0-0" if self.last == "-" else self.last},
                                    count=BATCH, block=self._block_ms())
            self._reached()
            for entry_id, fields in (reply[0][1] if reply else ()):
                self.last = entry_id.decode()
                event = LogEvent.from_fields(fields)
                yield event
                if event.kind == "eof":
                    return
            if not reply:
                if _ended_without_eof(self.conn, self.job_id):
                    return
                self._check_deadline()

    def _block_ms(self) -> int:
        if self.deadline is None:
            return BLOCK_MS
        return max(1, min(BLOCK_MS, int((self.deadline - time.monotonic()) * 1000)))

    def _check_deadline(self) -> None:
        if self.deadline is not None and time.monotonic() >= self.deadline:
            raise TimeoutError(f"job {self.job_id} did not end within the timeout")

    def _reached(self) -> None:
        self.lost_since, self.delay = None, RETRY_DELAY

    def wait_for_redis(self, exc: BaseException) -> None:
        """Sleep before the next try (backing off to 2 s); give up after RECONNECT_FOR."""
        now = time.monotonic()
        if self.lost_since is None:
            self.lost_since = now
            log.warning("lost Redis while following job %s (%s); reconnecting", self.job_id, exc)
        if now - self.lost_since >= RECONNECT_FOR:
            raise QueueUnavailable(_where(self.conn), f"{exc} (following job {self.job_id}, "
                                   f"gave up after {RECONNECT_FOR:.0f}s)") from exc
        self._check_deadline()
        time.sleep(self.delay)
        self.delay = min(self.delay * 2, 2.0)


def _where(conn: Any) -> str:
    """The server a client talks to, as a URL without credentials."""
    kw = conn.connection_pool.connection_kwargs
    if "path" in kw:
        return f"unix://{kw['path']}"
    return f"redis://{kw.get('host', '?')}:{kw.get('port', 6379)}/{kw.get('db', 0)}"


def _ended_without_eof(conn: Any, job_id: str) -> bool:
    """Reap a dead worker's job; True if the job is final yet its eof is gone (trimmed/expired)."""
    store.reap(conn)
    if store.status_of(conn, job_id) not in FINAL:  # NoSuchJob: expired while followed
        return False
    return not conn.xrevrange(store.key(job_id, "log"), count=1)
