"""A worker process: clean up after crashes, connect (with backoff), work the queues.

The RQ worker class is SimpleWorker: the job runs in the worker process
itself, no fork per job. The sandbox already isolates the job's code, so
RQ's fork buys nothing but cost (bench/jobs.py measures both), and the
worker runs threads (lease renewal, the reaper) that must not be forked.

``--concurrency N`` starts N such processes and supervises them.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time

log = logging.getLogger("sandbox.worker")
BACKOFF_START, BACKOFF_MAX = 0.5, 30.0
REAP_INTERVAL = 2.0


def cleanup_host() -> None:
    """What a crashed worker left on this machine: sandboxes (`sandbox gc`) and job dirs."""
    from jobs import workspace
    from sandbox import collect_garbage

    report = collect_garbage()
    for item in report.removed:
        log.info("gc: removed sandbox %s left by a dead process", item)
    for err in report.errors:
        log.warning("gc: %s", err)
    for job_id in workspace.collect():
        log.info("gc: removed the directory of job %s left by a dead worker", job_id)


def serve(url: str, queues: list[str], *, burst: bool = False, name: str | None = None) -> int:
    """Run one RQ SimpleWorker until stopped (or the queues are empty, with burst)."""
    cleanup_host()
    _start_reaper(url)
    delay = BACKOFF_START
    while True:
        try:
            worker = _make_worker(url, queues, name)
            log.info("worker %s takes jobs from %s", worker.name, ", ".join(queues))
            # RQ's own INFO lines are four per job; task.run logs one, with the verdict
            worker.work(burst=burst, logging_level="WARNING")
            # RQ records a SIGINT/SIGTERM (warm shutdown) here, idle or busy
            if burst or getattr(worker, "_shutdown_requested_date", None) is not None:
                return 0
            log.warning("worker %s stopped unexpectedly; starting again", worker.name)
        except _connection_errors() as exc:
            log.warning("Redis at %s unreachable (%s); retrying in %.1fs", url, exc, delay)
        time.sleep(delay)
        delay = min(delay * 2, BACKOFF_MAX)


def _connection_errors() -> tuple[type[BaseException], ...]:
    import redis

    from jobs.errors import QueueUnavailable

    return (redis.ConnectionError, redis.TimeoutError, QueueUnavailable)


def _make_worker(url: str, queues: list[str], name: str | None):
    from rq import SimpleWorker
    from rq.serializers import JSONSerializer

    from jobs.client import connect

    conn = connect(url)
    return SimpleWorker(queues, connection=conn, serializer=JSONSerializer, name=name)


def _start_reaper(url: str) -> None:
    """End jobs whose worker died (their lease expired), every REAP_INTERVAL seconds."""
    import redis

    from jobs import store

    conn = redis.Redis.from_url(url, socket_connect_timeout=3)

    def loop() -> None:
        from sandbox import leave_to_main_thread

        leave_to_main_thread()  # RQ's SIGTERM/SIGINT handlers: the main thread's, promptly
        while True:
            try:
                for job_id in store.reap(conn):
                    log.warning("job %s: its worker died mid-job; marked error", job_id)
            except Exception as exc:
                log.debug("reaper: %s", exc)
            time.sleep(REAP_INTERVAL)

    threading.Thread(target=loop, name="reaper", daemon=True).start()


def supervise(argv: list[str], concurrency: int) -> int:
    """Start ``concurrency`` single worker processes; forward SIGINT/SIGTERM; the worst status."""
    procs = [subprocess.Popen([sys.executable, "-m", "sandbox", "worker", *argv, "--concurrency", "1"])
             for _ in range(concurrency)]

    def forward(signum, _frame) -> None:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    return max(proc.wait() for proc in procs)


def configure_logging() -> None:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format=f"%(asctime)s worker[{os.getpid()}] %(levelname)s %(message)s")
