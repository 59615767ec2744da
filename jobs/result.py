"""What a job ended as: its status, one StepResult per step, JUnit, artifacts.

Statuses (the ``status`` field of a job, in Redis and here):

- ``queued``    submitted, no worker has taken it yet
- ``running``   a worker runs its steps (it holds a 5-second lease it renews every 250 ms)
- ``passed``    every step exited 0 and the JUnit reports (if any) hold no failure
- ``failed``    a step failed, a report holds failures/errors, or is missing/empty
- ``error``     the job could not be run (setup error, worker died mid-job)
- ``timed_out`` the job's or a step's timeout killed a step
- ``cancelled`` cancelled before or while it ran
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from sandbox import format_size

from .junit import JUnitReport

QUEUED, RUNNING = "queued", "running"
PASSED, FAILED, ERROR, TIMED_OUT, CANCELLED = "passed", "failed", "error", "timed_out", "cancelled"
FINAL = (PASSED, FAILED, ERROR, TIMED_OUT, CANCELLED)
#: exit status of `sandbox submit --follow` / `sandbox jobs wait` per final status
EXIT_STATUS = {PASSED: 0, FAILED: 1, ERROR: 2, TIMED_OUT: 124, CANCELLED: 130}


@dataclass(frozen=True)
class StepResult:
    """One step: its status (passed, failed, timed_out, error, cancelled, skipped) and the engine's Result."""

    name: str
    status: str
    exit_code: int | None = None
    duration: float = 0.0
    peak_memory: int | None = None
    message: str | None = None
    result: dict[str, Any] | None = None  # sandbox.Result.to_dict()

    def line(self) -> str:
        """``test  failed  exit 1  1.93s  peak 45.2 MiB``"""
        parts = [self.name, self.status]
        if self.exit_code is not None:
            parts.append(f"exit {self.exit_code}")
        parts.append(f"{self.duration:.2f}s")
        if self.peak_memory:
            parts.append(f"peak {format_size(self.peak_memory)}")
        if self.message:
            parts.append(self.message)
        return "  ".join(parts)


@dataclass(frozen=True)
class ServiceResult:
    """One service of a job: how it went (jobs.services has the statuses)."""

    name: str
    status: str
    ready_in: float | None = None
    exit_code: int | None = None
    message: str | None = None

    def line(self) -> str:
        """``redis  ready in 0.05s`` or ``db  exited  exit 1  while the steps ran``"""
        parts = [self.name, self.status]
        if self.ready_in is not None:
            parts[-1] += f" in {self.ready_in:.2f}s"
        if self.exit_code is not None:
            parts.append(f"exit {self.exit_code}")
        if self.message:
            parts.append(self.message.splitlines()[0])
        return "  ".join(parts)


@dataclass(frozen=True)
class Artifact:
    """A file the job left in its workspace; ``stored`` is False when over the size cap."""

    path: str
    size: int
    sha256: str
    stored: bool = True


@dataclass(frozen=True)
class JobResult:
    """The outcome of one job, as stored in Redis (JSON) and printed by the summary."""

    id: str
    name: str
    status: str
    started_at: float = 0.0
    ended_at: float = 0.0
    steps: tuple[StepResult, ...] = ()
    junit: JUnitReport | None = None
    artifacts: tuple[Artifact, ...] = ()
    error: str | None = None
    worker: str | None = None
    matrix: dict[str, str] = field(default_factory=dict)
    services: tuple[ServiceResult, ...] = ()

    @property
    def duration(self) -> float:
        return max(self.ended_at - self.started_at, 0.0)

    @property
    def peak_memory(self) -> int | None:
        peaks = [s.peak_memory for s in self.steps if s.peak_memory]
        return max(peaks) if peaks else None

    @property
    def ok(self) -> bool:
        return self.status == PASSED

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able data, built field by field (``asdict`` would also
        deep-copy every JUnit case only for it to be replaced)."""
        data = _fields(self)
        data["steps"] = [_fields(step) for step in self.steps]
        data["artifacts"] = [_fields(art) for art in self.artifacts]
        data["services"] = [_fields(svc) for svc in self.services]
        data["junit"] = self.junit.to_dict() if self.junit else None
        data["matrix"] = dict(self.matrix)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "JobResult":
        data = dict(data)
        data["steps"] = tuple(StepResult(**s) for s in data.get("steps", ()))
        data["junit"] = JUnitReport.from_dict(data["junit"]) if data.get("junit") else None
        data["artifacts"] = tuple(Artifact(**a) for a in data.get("artifacts", ()))
        data["services"] = tuple(ServiceResult(**s) for s in data.get("services", ()))
        return cls(**data)


def _fields(obj: Any) -> dict[str, Any]:
    """A dataclass's fields as a dict, values as they are (no deep copy)."""
    return {f.name: getattr(obj, f.name) for f in fields(obj)}
