"""The errors of the jobs package, all under the engine's SandboxError.

    SandboxError (sandbox.errors)       exit status 125 unless noted
    └── JobError                        anything about jobs
        ├── JobFileError                a job file is unreadable or invalid (file, key, accepted)
        ├── QueueUnavailable            Redis cannot be reached (url, cause)
        ├── QueueAuthFailed             Redis refused the credentials in the URL (not retried)
        ├── NoSuchJob                   no job with that id (expired or never submitted)
        └── WorkspaceError              the workspace cannot be packed, copied or unpacked

Redis and OS errors are translated at this boundary with ``raise ... from exc``.
URLs are shown redacted (``redis://:***@host``): a message may end up in a log.
"""

from __future__ import annotations

from sandbox import redact_url
from sandbox.errors import SandboxError


class JobError(SandboxError):
    """Root of the errors about jobs."""


class JobFileError(JobError, ValueError):
    """A job file is invalid: which file, which key, what is accepted."""

    def __init__(self, path: str, key: str | None, problem: str) -> None:
        where = f"{path}: {key}" if key else path
        super().__init__(f"{where}: {problem}")
        self.path = path
        self.key = key
        self.problem = problem


class QueueUnavailable(JobError, ConnectionError):
    """The Redis server behind the queue cannot be reached."""

    def __init__(self, url: str, cause: object) -> None:
        self.url = redact_url(url)
        super().__init__(f"cannot reach Redis at {self.url}: {cause}",
                         hint="start redis-server, or omit --redis to run the job here")


class QueueAuthFailed(JobError, PermissionError):
    """Redis answered, and refused the username or password of the URL."""

    def __init__(self, url: str, cause: object) -> None:
        self.url = redact_url(url)
        super().__init__(f"Redis at {self.url} refused the credentials: {cause}",
                         hint="fix the password in --redis or SANDBOX_REDIS_URL, "
                         "as redis://:PASSWORD@host:6379/0")


class NoSuchJob(JobError, LookupError):
    """No job with that id is known (never submitted, or its results expired)."""

    def __init__(self, job_id: str) -> None:
        super().__init__(f"no job {job_id!r}", hint="see `sandbox jobs list`")
        self.job_id = job_id


class WorkspaceError(JobError):
    """A job's workspace could not be packed, copied or unpacked."""
