"""The daemon's ASGI app: ``create_app()``, its lifespan, its routes under /v1, the console.

The lifespan makes the Engine (unless one is given, as tests do) and, at
shutdown, stops what it holds: running sandboxes are killed and torn down,
in-process jobs cancelled; jobs in Redis stay for the workers.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

from sandbox import __version__

from . import errors
from .console.routes import router as console_router
from .console.routes import static_apps
from .engine import Engine
from .routes import PREFIX, ROUTERS


def create_app(engine: Engine | None = None, *,
               make_engine: Callable[[], Engine] = Engine.start) -> FastAPI:
    """The app; its Engine is ``engine``, or made by ``make_engine`` when it starts."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.engine = engine if engine is not None else await run_in_threadpool(make_engine)
        try:
            yield
        finally:
            await run_in_threadpool(app.state.engine.shutdown)

    app = FastAPI(title="sandbox daemon", version=__version__, lifespan=lifespan,
                  openapi_url="/v1/openapi.json", docs_url="/v1/docs", redoc_url=None,
                  description="Sandboxes, images, networks and jobs of one host. On TCP every "
                  "request needs `Authorization: Bearer TOKEN`; errors are "
                  '`{"message": ..., "field": ..., "exit_status": ...}`.')
    errors.install(app)
    for router in ROUTERS:
        app.include_router(router, prefix=PREFIX)
    app.include_router(console_router)
    for path, files in static_apps():
        app.mount(path, files)
    return app
