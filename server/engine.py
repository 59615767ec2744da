"""What the routes act on: the daemon's sandboxes, its jobs, its classes, its tokens.

One ``Engine`` per app, made by the lifespan (``server.app``) and handed to
the routes by the ``get_engine`` dependency, which tests swap through
``app.dependency_overrides``. It is an adapter: the engine's work is done by
``sandbox`` (what its ``__init__`` exports) and ``jobs``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .classes.table import ClassTable
from .execs import ExecTable
from .held import SandboxTable
from .jobqueue import LocalJobs, QueuedJobs
from .reruns import Workspaces
from .tokens import TokenStore


@dataclass
class Engine:
    """The daemon's state: held sandboxes, execs, jobs (Redis or in-process), classes, tokens."""

    sandboxes: SandboxTable = field(default_factory=SandboxTable)
    execs: ExecTable = field(default_factory=ExecTable)
    jobs: QueuedJobs | LocalJobs = field(default_factory=LocalJobs)
    tokens: TokenStore = field(default_factory=TokenStore)
    classes: ClassTable = field(init=False)
    workspaces: Workspaces = field(default_factory=Workspaces)

    def __post_init__(self) -> None:
        self.classes = ClassTable(self.sandboxes)

    @classmethod
    def start(cls, *, redis_url: str | None = None, job_concurrency: int = 2,
              tokens: TokenStore | None = None) -> "Engine":
        """The engine of a daemon: jobs through Redis when a URL is given, else in-process."""
        jobs = QueuedJobs(redis_url) if redis_url else LocalJobs(job_concurrency)
        return cls(jobs=jobs, tokens=tokens or TokenStore())

    def shutdown(self) -> None:
        """Stop what runs here (classes, sandboxes, in-process jobs); jobs in Redis stay there."""
        self.classes.shutdown()
        self.execs.shutdown()
        self.jobs.close()
        self.sandboxes.shutdown()
