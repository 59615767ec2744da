"""One router per resource, all under /v1 (``server.app`` includes them)."""

from __future__ import annotations

from fastapi import APIRouter

from . import (
    classes,
    execs,
    images,
    job_logs,
    jobs,
    networks,
    sandbox_logs,
    sandboxes,
    system,
    terminals,
)

api = APIRouter(prefix="/v1")
for module in (system, sandboxes, sandbox_logs, execs, terminals, images, networks, jobs, job_logs, classes):
    api.include_router(module.router)
