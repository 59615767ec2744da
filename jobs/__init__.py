"""Jobs: the job file, submission to the queue, results, JUnit, live logs.

The public API::

    from jobs import load_job_file, run_job, submit, wait, connect, execute_job
    spec, = load_job_file("examples/unit-tests.toml")
    result = run_job(spec)                          # in this process
    result = run_job(spec, redis="redis://host/0")  # through the queue and a worker
    print(result.status, result.junit.headline())

Everything else is private to the package.
"""

from .client import connect, redis_url, run_job, run_local, submit, wait
from .errors import JobError, JobFileError, NoSuchJob, QueueUnavailable, WorkspaceError
from .events import LogEvent
from .execute import execute_job
from .jobfile import load as load_job_file
from .jobfile import parse as parse_job
from .junit import Case, JUnitReport
from .model import JobSpec, ResultsSpec, Step
from .result import Artifact, JobResult, StepResult

__all__ = [
    "load_job_file", "parse_job", "run_job", "run_local", "submit", "wait", "connect",
    "redis_url", "execute_job", "JobSpec", "Step", "ResultsSpec", "JobResult", "StepResult",
    "Artifact", "JUnitReport", "Case", "LogEvent", "JobError", "JobFileError", "NoSuchJob",
    "QueueUnavailable", "WorkspaceError",
]
