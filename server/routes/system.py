"""/v1/health, /v1/version, /v1/info (the host's facts, as `sandbox doctor` checks them)."""

from __future__ import annotations

import dataclasses
import os
import platform
from typing import Any

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from sandbox import __version__, host_checks

from ..deps import EngineDep, Reader
from ..models import ERRORS, Health, Version

router = APIRouter(tags=["system"], responses=ERRORS)
API_VERSION = "v1"


@router.get("/health", response_model=Health)
async def health() -> dict[str, str]:
    """Up (no token needed: load balancers and systemd ask it)."""
    return {"status": "ok"}


@router.get("/version", response_model=Version)
async def version(_caller: Reader) -> dict[str, str]:
    return {"version": __version__, "api": API_VERSION, "python": platform.python_version()}


@router.get("/info")
async def info(_caller: Reader, engine: EngineDep) -> dict[str, Any]:
    """The host: kernel, CPUs, `sandbox doctor`'s checks, the job mode, what the daemon holds."""
    checks = await run_in_threadpool(lambda: [dataclasses.asdict(c) for c in host_checks()])
    return {"version": __version__, "kernel": platform.release(), "cpus": os.cpu_count(),
            "jobs": "redis" if engine.jobs.queued else "in-process",
            "sandboxes": len(engine.sandboxes.all()), "checks": checks}
