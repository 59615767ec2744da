"""A job's own network: made before its services and steps, removed after them.

A job gets one when a service or a step needs a network (``network =
"bridge"``, ``egress``, or any service): a named network of its own, so its
members reach each other by name and no other job's sandboxes can reach
them. It is made ``temporary`` (its definition names this process), so
`sandbox gc`, and every worker at start, removes it when the process that
made it was killed before it could.
"""

from __future__ import annotations

import hashlib

from sandbox import SandboxError, create_network, remove_network

from .errors import JobError
from .events import JobLog


def network_name(job_id: str) -> str:
    """``job-<id>``: a network name (at most 63 characters) for the job."""
    if len(job_id) <= 40:
        return f"job-{job_id}"
    return f"job-{hashlib.sha256(job_id.encode()).hexdigest()[:20]}"


class JobNetwork:
    """The job's network as a context manager: ``name`` is None when the job needs none."""

    def __init__(self, job_id: str, needed: bool, log: JobLog) -> None:
        self.name = network_name(job_id) if needed else None
        self.log = log
        self.made = False

    def __enter__(self) -> "JobNetwork":
        if self.name is not None:
            try:
                create_network(self.name, temporary=True)
            except SandboxError as exc:
                raise JobError(f"cannot make the job's network {self.name}: {exc}") from exc
            self.made = True
        return self

    def __exit__(self, *exc: object) -> None:
        if self.made and self.name is not None:
            try:
                remove_network(self.name)
            except SandboxError as exc:  # `sandbox gc` removes it once this process is gone
                self.log.emit("note", data=f"network {self.name} not removed: {exc}".encode())

