"""A worker process: clean up after crashes, connect (with backoff), work the queues.

The RQ worker class is SimpleWorker: the job runs in the worker process
itself, no fork per job. The sandbox already isolates the job's code, so
RQ's fork buys nothing but cost (bench/jobs.py measures both), and the
worker runs threads (lease renewal, the reaper) that must not be forked.

``--concurrency N`` starts N such processes and supervises them: it cleans
up after crashes once, for all of them, and hands them the Redis URL in the
environment, never on a command line every user can read in ps(1). Every
message names the URL redacted (``redis://:***@host``). A Redis that refuses
the URL's password ends the worker (retrying cannot help); one that cannot be
reached is retried with backoff.
"""

from __future__ import annotations

import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from typing import Any

from sandbox import redact_url

log = logging.getLogger("sandbox.worker")
BACKOFF_START, BACKOFF_MAX = 0.5, 30.0
REAP_INTERVAL = 2.0
#: Seconds between two heartbeats of a busy worker (its record lives ``worker_ttl``).
HEARTBEAT_INTERVAL = 5.0


def cleanup_host() -> None:
    """What a crashed worker left on this machine: sandboxes, job networks (`sandbox gc`),
    job dirs and half-saved caches."""
    from jobs import cache, workspace
    from sandbox import collect_garbage

    report = collect_garbage()
    for item in report.removed:
        log.info("gc: removed sandbox %s left by a dead process", item)
    for err in report.errors:
        log.warning("gc: %s", err)
    for job_id in workspace.collect():
        log.info("gc: removed the directory of job %s left by a dead worker", job_id)
    for name in cache.collect():
        log.info("gc: removed the cache work dir %s left by a dead worker", name)


def serve(url: str, queues: list[str], *, burst: bool = False, name: str | None = None,
          cleanup: bool = True) -> int:
    """Run one RQ SimpleWorker until stopped (or the queues are empty, with burst).

    QueueAuthFailed (raised) when Redis refuses the URL's credentials.
    ``cleanup``: False when a supervisor has already cleaned up for it.
    A worker whose Redis goes away (restarted, cut off) starts again once it
    is back, with the same name if it was given one.
    """
    from jobs.client import is_auth_error
    from jobs.errors import QueueAuthFailed, QueueUnavailable

    from .task import CONNECTIONS

    if cleanup:
        cleanup_host()
    CONNECTIONS.configure(url)
    _start_reaper(url)
    delay, worker = BACKOFF_START, None
    while True:
        try:
            worker = _make_worker(url, queues, name, previous=worker)
            delay = BACKOFF_START  # it reached Redis: the next outage starts over
            log.info("worker %s takes jobs from %s", worker.name, ", ".join(queues))
            # RQ's own INFO lines are four per job; task.run logs one, with the verdict
            worker.work(burst=burst, logging_level="WARNING")
            # RQ records a SIGINT/SIGTERM (warm shutdown) here, idle or busy
            if burst or getattr(worker, "_shutdown_requested_date", None) is not None:
                return 0
            log.warning("worker %s stopped (Redis went away?); starting again", worker.name)
        except _connection_errors() as exc:
            if is_auth_error(exc):  # refused mid-run (the password changed): as at the start
                raise QueueAuthFailed(url, exc) from exc
            why = exc.__cause__ if isinstance(exc, QueueUnavailable) else exc
            log.warning("Redis at %s unreachable (%s); retrying in %.1fs", redact_url(url), why, delay)
        time.sleep(delay)
        delay = min(delay * 2, BACKOFF_MAX)


def _connection_errors() -> tuple[type[BaseException], ...]:
    import redis

    from jobs.errors import QueueUnavailable

    return (redis.ConnectionError, redis.TimeoutError, QueueUnavailable)


def _make_worker(url: str, queues: list[str], name: str | None, previous: Any = None) -> Any:
    """A new RQ worker; ``previous``: this process's last one, which Redis may still list.

    Without ``name``, each is named HOST.PID.RANDOM (the machine in `sandbox
    jobs list`). With one, the previous incarnation's record is marked dead
    first: RQ refuses a name whose record looks alive (as after a cut link).
    """
    from rq.serializers import JSONSerializer

    from jobs.client import connect

    conn = connect(url)
    if name is not None and previous is not None:
        previous.register_death()
    name = name or f"{socket.gethostname()}.{os.getpid()}.{secrets.token_hex(2)}"
    return _worker_class()(queues, connection=conn, serializer=JSONSerializer, name=name)


def _worker_class() -> type:
    """RQ's SimpleWorker, with three changes.

    - Its heartbeat (the worker's record kept alive for ``worker_ttl``, 420 s
      by default) is written at most every HEARTBEAT_INTERVAL seconds, in one
      round trip. RQ writes it three times per job, each as three commands:
      for trivial jobs, a third of the worker's Redis round trips.
      A heartbeat inside RQ's own pipelines (a job's monitoring) is written as
      RQ writes it.
    - Its state ("idle", "busy") is written when it changes: RQ writes "idle"
      twice between two jobs.
    - Its pubsub thread is stopped without waiting for it. RQ's thread waits for
      messages in 60-second sleeps, and redis-py 7+'s stop() joins it: a
      worker's exit (--burst, SIGTERM) took up to a minute. The thread is a
      daemon; it ends with the process.
    """
    from rq import SimpleWorker

    class Worker(SimpleWorker):
        _heartbeat_sent: float | None = None
        _heartbeat_ttl = 0
        _state_sent: str | None = None

        def set_state(self, state: str, pipeline: Any = None) -> None:
            if pipeline is None and state == self._state_sent:
                self._state = state
                return
            super().set_state(state, pipeline=pipeline)
            self._state_sent = state

        def heartbeat(self, timeout: int | None = None, pipeline: Any = None) -> None:
            if pipeline is not None:
                super().heartbeat(timeout, pipeline=pipeline)
                return
            ttl = timeout or self.worker_ttl + 60
            sent = time.monotonic()
            if (self._heartbeat_sent is not None and ttl <= self._heartbeat_ttl
                    and sent - self._heartbeat_sent < HEARTBEAT_INTERVAL):
                return
            with self.connection.pipeline() as pipe:
                super().heartbeat(ttl, pipeline=pipe)
                pipe.execute()
            self._heartbeat_sent, self._heartbeat_ttl = sent, ttl

        def unsubscribe(self) -> None:
            thread = self.pubsub_thread
            if thread:
                self.pubsub.unsubscribe()
                try:
                    thread.stop(timeout=0.1)
                except TypeError:  # redis-py before 7: stop() does not wait
                    thread.stop()

    return Worker


def _start_reaper(url: str) -> None:
    """End jobs whose worker died (their lease expired), every REAP_INTERVAL seconds."""
    import redis

    from jobs import store
    from jobs.client import connection_options

    conn = redis.Redis.from_url(url, **connection_options(url, retries=0))

    def loop() -> None:
        from sandbox import leave_to_main_thread

        leave_to_main_thread()  # RQ's SIGTERM/SIGINT handlers: the main thread's, promptly
        while True:
            try:
                for job_id in store.reap(conn):
                    log.warning("job %s: its worker stopped renewing its lease (died or cut off); "
                                "marked error", job_id)
            except Exception as exc:
                log.debug("reaper: %s", exc)
            time.sleep(REAP_INTERVAL)

    threading.Thread(target=loop, name="reaper", daemon=True).start()


def supervise(url: str, queues: list[str], *, burst: bool, concurrency: int) -> int:
    """Start ``concurrency`` single worker processes; forward SIGINT/SIGTERM; the worst status.

    Cleans up once for all of them (each would log the same lines again),
    and refuses a URL whose password Redis refuses before starting any.
    The URL goes to them in SANDBOX_REDIS_URL, not on their command lines.
    """
    from jobs.client import connect
    from jobs.errors import QueueUnavailable

    try:
        connect(url).close()
    except QueueUnavailable:
        pass  # each worker retries with backoff, and says so
    cleanup_host()
    argv = [a for q in queues for a in ("--queue", q)] + (["--burst"] if burst else [])
    env = dict(os.environ, SANDBOX_REDIS_URL=url)
    procs: list[subprocess.Popen] = []
    received: list[int] = []

    def forward(signum, _frame) -> None:
        received.append(signum)
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signum)

    # before the first child: a signal meanwhile would end this process and orphan them
    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    for _ in range(concurrency):
        if received:
            break
        procs.append(subprocess.Popen([sys.executable, "-m", "sandbox", "worker", *argv,
                                       "--concurrency", "1", "--no-cleanup"], env=env))
        if received:  # it came while this one was being started
            procs[-1].send_signal(received[0])
    return max((proc.wait() for proc in procs), default=128 + received[0] if received else 0)


def configure_logging() -> None:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format=f"%(asctime)s worker[{os.getpid()}] %(levelname)s %(message)s")
