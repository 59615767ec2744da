"""After the steps: a job's JUnit reports and artifacts, read within what is left of the job.

The workspace was written by untrusted code. Finding the files (``globbing``)
never enters a symlinked directory, and looking, reading and hashing all
spend one ``Budget``: what is left of the job's timeout (at least
COLLECT_GRACE seconds, so a job whose last step used all its time still
reports), its cancel, and a bound on the entries looked at. When it runs
out, the collection stops and says why (``Collected.stopped``): the job
then ends `timed_out` or `cancelled`, or `failed` for too many files.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

from . import artifacts as artifacts_mod
from .cancellation import Cancel
from .events import JobLog
from .globbing import Budget, GlobStopped
from .junit import JUnitReport, parse_reports
from .model import JobSpec
from .result import Artifact

COLLECT_GRACE = 5.0
StoreArtifacts = Callable[[str, list[tuple[Artifact, "bytes | None"]]], object]


@dataclass
class Collected:
    """The reports, the artifacts, and why the collection stopped early (None: it did not)."""

    junit: JUnitReport | None = None
    artifacts: list[Artifact] = field(default_factory=list)
    stopped: str | None = None


def budget_for(spec: JobSpec, started: float, cancel: Cancel) -> Budget:
    """What is left of the job's timeout (``started``: time.time()), at least the grace."""
    if not spec.timeout:
        return Budget(stop=cancel.is_set)
    left = spec.timeout - (time.time() - started)
    return Budget(deadline=time.monotonic() + max(left, COLLECT_GRACE), stop=cancel.is_set)


def collect(spec: JobSpec, job_id: str, workspace: str, log: JobLog, store: StoreArtifacts,
            budget: Budget) -> Collected:
    """Parse the JUnit reports, then collect and store the artifacts, within ``budget``."""
    done = Collected()
    try:
        if spec.results.junit:
            done.junit = parse_reports(workspace, spec.results.junit, budget)
            for problem in done.junit.problems:
                log.emit("note", data=f"JUnit: {problem}".encode())
        if spec.results.artifacts:
            items, problems = artifacts_mod.collect(workspace, spec.results.artifacts, budget)
            for problem in problems:
                log.emit("note", data=problem.encode())
            store(job_id, items)
            done.artifacts = [art for art, _ in items]
    except GlobStopped as exc:
        done.stopped = exc.reason
        log.emit("note", data=f"results: collection stopped: {exc.reason}".encode())
    return done
