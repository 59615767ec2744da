"""The client side: connect, submit, follow, wait, and run a job to its result.

``run_job`` is the one call other code needs (the CLI, the pytest plugin):
with a Redis URL it submits the job to the queue and follows it; without one
it runs the job in this process. Either way the caller gets the same events
live and the same JobResult at the end.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

from . import store
from .cancellation import Cancel
from .errors import JobError, QueueAuthFailed, QueueUnavailable
from .events import JobLog, LogEvent
from .execute import execute_job, new_job_id
from .model import JobSpec
from .result import JobResult
from .workspace import pack

DEFAULT_QUEUE = "default"
#: RQ's own timeout is the job's plus this margin: it only fires if the runner hangs
RQ_TIMEOUT_MARGIN = 60
TASK = "worker.task.run"
#: Seconds RQ keeps its own record of a job that ran (the result is ours: store.finish).
#: Not 0: deleting it at once costs the worker more Redis work per job than its expiry.
RQ_RESULT_TTL = 60
#: a command's reply must come within this (blocking reads block for less)
SOCKET_TIMEOUT = 5.0
#: retries of a command on a lost connection (about 5 s in all: a Redis restart)
RETRIES = 8
#: the kernel drops a connection whose sent data stays unacknowledged this long (a dead link)
DEAD_LINK_MS = 10_000


def redis_url(explicit: str | None = None) -> str | None:
    """--redis, else SANDBOX_REDIS_URL, else None (run in-process)."""
    return explicit or os.environ.get("SANDBOX_REDIS_URL") or None


def connect(url: str, *, socket_timeout: float = SOCKET_TIMEOUT, retries: int = RETRIES) -> Any:
    """A Redis client for ``url`` that has answered a PING.

    QueueAuthFailed when Redis refuses the URL's credentials (retrying cannot
    help), QueueUnavailable when it cannot be reached: at once, for a first
    contact. From then on its commands wait through a short outage
    (``retries``, see connection_options) and notice a dead link within
    seconds instead of TCP's minutes.
    """
    import redis

    try:
        conn = redis.Redis.from_url(url, **connection_options(
            url, socket_timeout=socket_timeout, retries=0))
        conn.ping()
    except (redis.RedisError, ValueError, OSError) as exc:
        if is_auth_error(exc):
            raise QueueAuthFailed(url, exc) from exc
        raise QueueUnavailable(url, exc) from exc
    conn.set_retry(_retry(retries))
    return conn


def connection_options(url: str, *, socket_timeout: float | None = SOCKET_TIMEOUT,
                       retries: int = RETRIES, connect_timeout: float = 3.0) -> dict[str, Any]:
    """redis-py options that make a lost Redis an error within seconds, the same in every version.

    A Redis that restarts refuses connections for a moment: each command is
    retried ``retries`` times, 50 ms apart doubling up to 1 s (about 5 s for
    the default 8), then raises. A link that goes dead drops nothing and
    answers nothing: TCP keepalive probes an idle connection after 5 s, and
    TCP_USER_TIMEOUT (tcp(7)) has the kernel give up on one whose data stays
    unacknowledged for 10 s, where TCP's own retransmissions take minutes.
    Commands that block (XREAD, BLMOVE) must block for less than ``socket_timeout``.
    """
    import socket

    import redis

    options: dict[str, Any] = dict(
        socket_connect_timeout=connect_timeout, socket_timeout=socket_timeout, health_check_interval=30,
        retry=_retry(retries), retry_on_error=[redis.ConnectionError, redis.TimeoutError])
    if url.startswith(("redis://", "rediss://")):  # TCP (a unix socket has no keepalive)
        probes = {socket.TCP_KEEPIDLE: 5, socket.TCP_KEEPINTVL: 2, socket.TCP_KEEPCNT: 3}
        if hasattr(socket, "TCP_USER_TIMEOUT"):
            probes[socket.TCP_USER_TIMEOUT] = DEAD_LINK_MS
        options.update(socket_keepalive=True, socket_keepalive_options=probes)
    return options


def _retry(retries: int) -> Any:
    from redis.backoff import ExponentialBackoff
    from redis.retry import Retry

    return Retry(ExponentialBackoff(cap=1.0, base=0.05), retries)


def is_auth_error(exc: BaseException) -> bool:
    """Redis refused the username or password (a wrong one, or none where one is needed)."""
    import redis

    if isinstance(exc, redis.AuthenticationError):
        return True
    text = str(exc)
    return isinstance(exc, redis.ResponseError) and text.startswith(("NOAUTH", "WRONGPASS",
                                                                     "ERR AUTH", "NOPERM"))


def submit(conn: Any, spec: JobSpec, *, queue: str = DEFAULT_QUEUE,
           packed: bytes | None = None, owner: str | None = None,
           secrets: Mapping[str, str] | None = None) -> str:
    """Record the job, put it on the RQ queue (JSON, no pickle); its id.

    ``packed`` is the job's workspace already packed (``jobs.pack_workspace``),
    for a caller that submits many jobs of one directory and packs it once.
    ``owner``: who submitted it (the daemon's token name), kept in its record.
    ``secrets``: the values of the secrets its steps list (kept apart from
    the job, until a worker takes them: see jobs.secrets).
    """
    import redis
    from rq import Queue
    from rq.serializers import JSONSerializer

    if packed is None and spec.workspace:
        packed = pack(spec.workspace)
    job_id = new_job_id()
    try:
        store.create(conn, job_id, spec, queue, packed, owner=owner,
                     secrets=_needed(spec, secrets))
        Queue(queue, connection=conn, serializer=JSONSerializer).enqueue(
            TASK, job_id, job_id=job_id, description=spec.name,
            job_timeout=int(spec.timeout or 0) + RQ_TIMEOUT_MARGIN,
            result_ttl=RQ_RESULT_TTL, failure_ttl=store.JOB_TTL)
    except redis.RedisError as exc:
        raise JobError(f"cannot submit job {spec.name!r}: {exc}") from exc
    return job_id


def _needed(spec: JobSpec, secrets: Mapping[str, str] | None) -> dict[str, str]:
    """The secrets this job's steps and services list (the others are never sent)."""
    values = dict(secrets or {})
    missing = [n for n in spec.secret_names if n not in values]
    if missing:
        raise JobError(f"job {spec.name!r} lists secret {missing[0]}, which was not given",
                       hint=f"pass --secret {missing[0]}")
    return {n: values[n] for n in spec.secret_names}


def wait(conn: Any, job_id: str, *, timeout: float | None = None,
         on_event: Callable[[LogEvent], None] | None = None) -> JobResult:
    """Block until the job ends (following its log); its JobResult."""
    from .logstream import follow

    for event in follow(conn, job_id, timeout=timeout):
        if on_event is not None:
            on_event(event)
    result = store.result_of(conn, job_id)
    if result is None:
        raise JobError(f"job {job_id} ended without a stored result")
    return result


def artifact(conn: Any, job_id: str, path: str) -> bytes | None:
    """The bytes of one artifact a job stored (``[results] artifacts``); None if it has none there.

    None also for a file over the artifact size caps (its JobResult lists it
    with ``stored=False``). NoSuchJob when the job is unknown or expired.
    """
    import redis

    try:
        store.require(conn, job_id)
        return store.artifact(conn, job_id, path)
    except redis.RedisError as exc:
        raise JobError(f"cannot fetch artifact {path} of job {job_id}: {exc}") from exc


def cancel(conn: Any, job_id: str) -> str:
    """Cancel a job (at once if queued, through its worker if running); the status it had."""
    import redis

    try:
        return store.request_cancel(conn, job_id)
    except redis.RedisError as exc:
        raise JobError(f"cannot cancel job {job_id}: {exc}") from exc


def tell(conn: Any, job_id: str, line: str) -> None:
    """Tell a queued or running job one line: its worker appends it to the file
    ``.sandbox-inbox`` of the job's workspace (``/workspace/.sandbox-inbox`` in its steps)
    within a quarter of a second while the job runs."""
    import redis

    try:
        store.tell(conn, job_id, line)
    except redis.RedisError as exc:
        raise JobError(f"cannot tell job {job_id}: {exc}") from exc


def run_local(spec: JobSpec, *, on_event: Callable[[LogEvent], None] | None = None,
              cancel: Cancel | None = None, secrets: Mapping[str, str] | None = None) -> JobResult:
    """Run the job in this process (the embedded mode) with the same events."""
    sinks = [_Callback(on_event)] if on_event is not None else []
    return execute_job(spec, log=JobLog(*sinks), cancel=cancel, secrets=secrets)


def run_job(spec: JobSpec, *, redis: str | None = None, queue: str = DEFAULT_QUEUE,
            on_event: Callable[[LogEvent], None] | None = None,
            timeout: float | None = None, secrets: Mapping[str, str] | None = None) -> JobResult:
    """Submit and wait (with a Redis URL, or SANDBOX_REDIS_URL), else run here."""
    url = redis_url(redis)
    if url is None:
        return run_local(spec, on_event=on_event, secrets=secrets)
    conn = connect(url)
    job_id = submit(conn, spec, queue=queue, secrets=secrets)
    return wait(conn, job_id, timeout=timeout, on_event=on_event)


class _Callback:
    def __init__(self, fn: Callable[[LogEvent], None]) -> None:
        self.fn = fn

    def write(self, event: LogEvent) -> None:
        self.fn(event)
