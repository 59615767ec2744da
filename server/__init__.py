"""The sandbox daemon: a REST API (/v1) over the engine and the job queue.

An adapter, like ``worker``: it uses only what ``sandbox`` and ``jobs``
export. ``create_app()`` is the FastAPI app (``app``: lifespan, routers);
``routes/`` has one router per resource; ``deps`` the engine dependency and
the token checks; ``models`` the request and response shapes; ``held`` the
sandboxes the daemon made; ``jobqueue`` its jobs (Redis, or in-process);
``tokens`` the bearer tokens; ``daemon`` the process (`sandbox daemon`).

Its client is ``sandbox.client`` (what the CLI uses with SANDBOX_HOST); it
imports neither this package nor the engine.
"""

from __future__ import annotations

from typing import Any

__all__ = ["create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from .app import create_app

        return create_app
    raise AttributeError(f"module 'server' has no attribute {name!r}")
