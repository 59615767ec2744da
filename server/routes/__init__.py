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

PREFIX = "/v1"
#: Each resource's router, in the order their routes are matched (the app includes each
#: under PREFIX itself: FastAPI matches a path once more per level of included routers).
ROUTERS: tuple[APIRouter, ...] = tuple(module.router for module in (
    system, sandboxes, sandbox_logs, execs, terminals, images, networks, jobs, job_logs, classes))
