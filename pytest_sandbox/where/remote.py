"""Dispatch marked tests to the job queue's workers (``--sandbox-redis URL``), in batches.

As pytest-xdist's load scheduling hands each worker a chunk of the tests:
when the session knows its tests (``expect``, after collection) they are
cut, in the session's order, into one batch per worker listening on the
queue (tests of the same spec only: ``queue_job.batch_key``), each one job
(``queue_job.batch_job``): its worker collects the batch once and runs each
test in namespaces of its own (``pytest_sandbox.batch``), writing a line per
test to the job's log as the test ends. A thread per job follows its log, so
each test's outcome is here as soon as it ended there; the session shows
them in its own order. When a batch has ended and another still has tests it
has not started, the second half of those is stolen: the other batch is told
(``jobs.tell``) to stop there, says where it stopped, and the rest goes to a
new batch, for the worker that is free. A test that was not expected (a
pytest-xdist worker learns of its tests a few at a time) goes, when its turn
comes, in a batch with the tests the worker holds by then. Jobs still queued
or running when the session ends early (``-x``, Ctrl-C) are cancelled.

Redis unreachable at the start, or a rootdir too big to travel, is one
usage error; a job lost later (Redis gone, results expired) fails its
tests only, saying so.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator

import pytest
import redis

import jobs
from jobs.client import DEFAULT_QUEUE
from sandbox import SpecError, redact_url

from .. import crash
from . import Outcome
from .queue_job import (
    STEP,
    batch_job,
    batch_key,
    fits,
    frame_outcome,
    frames,
    test_spec,
    why_unrun,
)

#: Steal only when the half to steal would take longer than this (seconds): a new batch
#: starts a pytest and collects on its worker first.
STEAL_WORTH = 2.0
#: How much of a batch's stderr is kept to say why its tests did not run.
STDERR_TAIL = 8192


class Batch:
    """One batch job: its tests in order, and the lines that came back for them."""

    def __init__(self, items: list, spec) -> None:
        self.items = items
        self.spec = spec
        self.job_id: str | None = None
        self.frames: dict[int, dict] = {}  # index -> its line
        self.ended = False
        self.job = None  # its JobResult, once ended
        self.error: str | None = None  # why it could not be followed, or submitted
        self.stderr = b""
        self.stolen_from: int | None = None  # where it stopped for another batch
        self.steal_asked = False

    def unstarted(self) -> int:
        """Tests it has not reached yet (the one running counts as started)."""
        return max(0, len(self.items) - len(self.frames) - 1)

    def reported(self) -> bool:
        """Every test it kept has its line: the job ends by itself, nothing to cancel."""
        kept = len(self.items) if self.stolen_from is None else self.stolen_from
        return len(self.frames) >= kept

    def seconds_per_test(self) -> float | None:
        done = [f["ended"] - f["started"] for f in self.frames.values() if "ended" in f]
        return sum(done) / len(done) if done else None


class QueueRunner:
    """Submits the marked tests as batch jobs and turns their lines into the tests' outcomes."""

    needs_host_sandboxes = False  # the workers make the sandboxes

    def __init__(self, config, url: str, *, queue: str | None = None) -> None:
        self.config = config
        self.url = redact_url(url)  # for messages: never the password
        self.queue = queue or DEFAULT_QUEUE
        try:
            self.conn = jobs.connect(url)
        except jobs.QueueAuthFailed as exc:
            raise pytest.UsageError(f"--sandbox-redis: {exc}") from exc
        except jobs.QueueUnavailable as exc:
            raise pytest.UsageError(
                f"--sandbox-redis: {exc.message.rstrip('.')}; start Redis there (and `sandbox worker "
                f"--redis {self.url}`), or run without --sandbox-redis to sandbox marked tests "
                "on this host") from exc
        self.problems: dict = {}  # item -> why it cannot go to the queue
        self._where: dict = {}  # item -> (Batch, index)
        self._batches: list[Batch] = []
        self._changed = threading.Condition()
        self._threads: list[threading.Thread] = []
        self._closing = False
        self._capacity = 1  # the workers listening when the tests were submitted
        self._packed: bytes | None = None
        self._marked: set = set()  # under pytest-xdist: this worker's marked tests

    def expect(self, items: list) -> None:
        """Submit the marked tests now, one batch per worker: they run while we wait."""
        groups: dict = {}
        for item in items:
            spec = self._spec(item)
            if spec is not None:
                groups.setdefault(batch_key(spec), (spec, []))[1].append(item)
        workers = self._capacity = max(1, self._workers())
        for spec, group in groups.values():
            for chunk in _chunks(group, workers):
                self._submit(chunk, spec)

    def collected(self, items: list) -> None:
        """A pytest-xdist worker's marked tests: it runs those it is handed, submitted in
        batches of what it holds when a test's turn comes (``handed_here``)."""
        self._marked = set(items)

    def run(self, item, nextitem) -> Outcome:
        if item not in self._where and item not in self.problems:
            spec = self._spec(item)
            if spec is not None:
                key = batch_key(spec)
                self._submit([item, *(other for other in handed_here(self.config)
                                      if self._unsent(other, key))], spec)
        if item in self.problems:
            return _failed(item, self.problems.pop(item))
        found = self._wait_for(item)
        if found is None:  # given up while the session closed
            return _failed(item, self.problems.pop(item))
        batch, frame = found
        if frame is not None:
            return frame_outcome(item, batch.job_id or "-", frame, batch.spec)
        return _failed(item, why_unrun(batch.job, batch.job_id or "-", batch.error, batch.stderr))

    def close(self) -> None:
        """Cancel the jobs of tests that will not run after all (the session ended early);
        a batch whose tests have all reported is left to end by itself."""
        with self._changed:
            self._closing = True
            running = [b.job_id for b in self._batches
                       if b.job_id and not b.ended and not b.reported()]
        for job_id in running:
            try:
                jobs.cancel(self.conn, job_id)
            except (jobs.JobError, redis.RedisError):
                pass  # the queue is gone; the job's TTL ends it
        for thread in list(self._threads):
            thread.join(30)

    # -- submitting ---------------------------------------------------------------

    def _unsent(self, item, key) -> bool:
        """Whether ``item`` is marked, not yet submitted, and of the spec ``key`` names."""
        if item not in self._marked or item in self._where or item in self.problems:
            return False
        spec = self._spec(item)
        return spec is not None and batch_key(spec) == key

    def _spec(self, item):
        try:
            return test_spec(self.config, item)
        except SpecError as exc:
            self.problems[item] = f"sandbox spec: {exc}"
            return None

    def _submit(self, items: list, spec) -> None:
        """Put ``items`` (of one spec) on the queue as batches, and follow each."""
        for chunk in _fitting([items]):
            batch = Batch(chunk, spec)
            with self._changed:
                self._batches.append(batch)
                for index, item in enumerate(chunk):
                    self._where[item] = (batch, index)
                self._changed.notify_all()
            try:
                nodeids = [item.nodeid for item in chunk]
                batch.job_id = jobs.submit(self.conn, batch_job(self.config, spec, nodeids),
                                           queue=self.queue, packed=self._workspace())
            except (jobs.JobError, redis.RedisError) as exc:
                self._ended(batch, None, f"cannot submit to the queue at {self.url}: {exc}")
                continue
            thread = threading.Thread(target=self._follow, args=(batch, batch.job_id), daemon=True,
                                      name=f"follow {batch.job_id}")
            self._threads.append(thread)
            thread.start()

    def _workspace(self) -> bytes:
        """The rootdir, packed once for all jobs; a usage error when it cannot travel."""
        if self._packed is None:
            try:
                self._packed = jobs.pack_workspace(str(self.config.rootpath))
            except jobs.WorkspaceError as exc:
                raise pytest.UsageError(f"--sandbox-redis: the rootdir is each job's "
                                        f"workspace: {exc}") from exc
            _warn_without_workers(self.conn, self.url, self.queue)
        return self._packed

    def _workers(self) -> int:
        from rq import Queue, Worker

        try:
            return Worker.count(queue=Queue(self.queue, connection=self.conn))
        except redis.RedisError:
            return 0

    # -- following (one thread per batch) -----------------------------------------

    def _follow(self, batch: Batch, job_id: str) -> None:
        pending = b""

        def on_event(event) -> None:
            nonlocal pending
            if event.kind != "out" or event.step != STEP:
                return
            if event.stream == "stderr":
                batch.stderr = (batch.stderr + event.data)[-STDERR_TAIL:]
                return
            found, pending = frames(pending + event.data)
            for frame in found:
                self._arrived(batch, frame)

        job, error = None, None
        try:
            job = jobs.wait(self.conn, job_id, on_event=on_event)
        except (jobs.JobError, redis.RedisError) as exc:
            error = str(exc)
        self._ended(batch, job, error)

    def _arrived(self, batch: Batch, frame: dict) -> None:
        with self._changed:
            if "stolen_from" in frame:
                batch.stolen_from = frame["stolen_from"]
            else:
                batch.frames[frame["index"]] = frame
            self._changed.notify_all()
        if "stolen_from" in frame:
            self._resubmit(batch)
        else:
            self._steal()  # a worker freed before any test had a time may steal now

    def _ended(self, batch: Batch, job, error: str | None) -> None:
        with self._changed:
            batch.ended, batch.job, batch.error = True, job, error
            self._changed.notify_all()
        self._steal()

    def _wait_for(self, item) -> tuple[Batch, dict | None] | None:
        """Block until ``item``'s line is in, or its batch ended without it (then its line is
        None); None when it was given up (the session closed while it moved batches)."""
        with self._changed:
            while True:
                if item not in self._where:
                    return None
                batch, index = self._where[item]
                frame = batch.frames.get(index)
                if frame is not None or (batch.ended and (batch.stolen_from is None
                                                          or index < batch.stolen_from)):
                    return batch, frame
                self._changed.wait()

    # -- stealing at the end ----------------------------------------------------------

    def _steal(self) -> None:
        """When a worker is free (fewer batches on the queue than workers), tell the batch
        with the most tests not started yet to leave the second half of them to a new batch."""
        with self._changed:
            if self._closing or sum(not b.ended for b in self._batches) >= self._capacity:
                return  # every worker has a batch, running or waiting for it
            if any(b.steal_asked and b.stolen_from is None and not b.ended for b in self._batches):
                return  # one steal at a time: the free worker gets that one's tests
            victims = [b for b in self._batches if not b.ended and not b.steal_asked]
            victim = max(victims, key=Batch.unstarted, default=None)
            if victim is None or victim.job_id is None or victim.unstarted() < 2:
                return
            per_test = victim.seconds_per_test() or 0.0
            if per_test * victim.unstarted() / 2 < STEAL_WORTH:
                return
            victim.steal_asked = True
            start = len(victim.items) - victim.unstarted() // 2
            job_id = victim.job_id
        try:
            jobs.tell(self.conn, job_id, f"steal {start}")
        except (jobs.JobError, redis.RedisError):
            pass  # it runs them itself

    def _resubmit(self, batch: Batch) -> None:
        """What a batch left when told to stop: a new batch, for the worker that is free
        (none once the session is closing: those tests fail, saying why)."""
        with self._changed:
            rest = batch.items[batch.stolen_from:]
            if self._closing:
                for item in rest:
                    self.problems[item] = "sandbox: the session ended before this test ran"
                    self._where.pop(item, None)
                self._changed.notify_all()
                return
        self._submit(rest, batch.spec)


#: pytest-xdist's schedulers that never take back a test they handed out (``worksteal`` does:
#: a test sent in a batch and then stolen would run twice).
KEEPING_SCHEDULERS = ("load", "loadscope", "loadfile", "loadgroup", "each", "no")


def handed_here(config) -> list:
    """The tests a pytest-xdist worker has been handed and not yet run, in its order (none
    when the scheduler may take them back, or xdist keeps them where this cannot see)."""
    if config.getoption("dist", "no") not in KEEPING_SCHEDULERS:
        return []
    worker = next((plugin for plugin in config.pluginmanager.get_plugins()
                   if type(plugin).__name__ == "WorkerInteractor"), None)
    lock = getattr(getattr(worker, "torun", None), "lock", None)
    items = getattr(getattr(worker, "session", None), "items", None)
    if not callable(lock) or items is None:
        return []
    with lock() as pending:
        indices = [getattr(worker, "nextitem_index", None), *pending]
    return [items[i] for i in indices if isinstance(i, int) and 0 <= i < len(items)]


def _chunks(items: list, count: int) -> Iterator[list]:
    """``items`` cut, in order, into ``count`` chunks of (nearly) the same size."""
    count = max(1, min(count, len(items)))
    size, extra = divmod(len(items), count)
    start = 0
    for i in range(count):
        end = start + size + (1 if i < extra else 0)
        yield items[start:end]
        start = end


def _fitting(chunks: list[list]) -> Iterator[list]:
    """Each chunk, halved until its node ids fit on a batch's command line."""
    for chunk in chunks:
        if len(chunk) > 1 and not fits([item.nodeid for item in chunk]):
            half = len(chunk) // 2
            yield from _fitting([chunk[:half], chunk[half:]])
        else:
            yield chunk


def _failed(item, reason: str) -> Outcome:
    return Outcome(crash.complete(item, [], None, reason=reason), path="remote")


def _warn_without_workers(conn, url: str, queue: str) -> None:
    """Say so at once when no worker listens on the queue: the tests would wait for one."""
    from rq import Queue, Worker

    if Worker.count(queue=Queue(queue, connection=conn)):
        return
    sys.stderr.write(f"pytest-sandbox: no worker listens on queue {queue!r} at {url}; sandboxed "
                     f"tests wait until one starts: sandbox worker --redis {url} --queue {queue}\n")
