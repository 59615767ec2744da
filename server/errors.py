"""Errors as the API answers them: one JSON line, the CLI's message and exit status.

The engine's errors keep their message (so a client prints exactly what the
embedded CLI would) and get the HTTP status of their meaning::

    SpecError, JobFileError, bad request bodies       400 (with ``field``)
    no such sandbox / job / image                       404
    StateError (busy, running, name in use)             409
    CommandNotFound, CommandNotExecutable, SetupError   400 (exit_status 127/126/125)
    HostError                                           503
    any other SandboxError                              400
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from jobs import JobFileError, NoSuchJob
from sandbox import HostError, ImageNotFound, SandboxError, SpecError, StateError


class ApiError(Exception):
    """An error a route raises on purpose: status, one line, and for 401 the challenge."""

    def __init__(self, status: int, message: str, *, field: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.field, self.headers = status, message, field, headers


def body(message: str, *, field: str | None = None, exit_status: int = 125,
         kind: str | None = None) -> dict[str, Any]:
    return {"message": message, "field": field, "exit_status": exit_status, "kind": kind}


def status_of(exc: SandboxError) -> int:
    if isinstance(exc, (ImageNotFound, NoSuchJob)) or (
            isinstance(exc, StateError) and exc.message.startswith(("no such sandbox", "no such class"))):
        return 404
    if isinstance(exc, StateError):
        return 409
    if isinstance(exc, HostError):
        return 503
    return 400


def _field_of(exc: SandboxError) -> str | None:
    if isinstance(exc, SpecError):
        return exc.field
    if isinstance(exc, JobFileError):
        return exc.key
    return None


async def sandbox_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, SandboxError)
    return JSONResponse(body(str(exc), field=_field_of(exc), exit_status=exc.exit_status,
                             kind=type(exc).__name__), status_code=status_of(exc))


async def api_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return JSONResponse(body(exc.message, field=exc.field, kind="ApiError"),
                        status_code=exc.status, headers=exc.headers)


async def http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    return JSONResponse(body(str(exc.detail), kind="HTTPException"), status_code=exc.status_code,
                        headers=getattr(exc, "headers", None))


async def validation_error(_request: Request, exc: Exception) -> JSONResponse:
    """A body or parameter of the wrong JSON type: 400 naming the first bad field."""
    assert isinstance(exc, RequestValidationError)
    first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
    where = ".".join(str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path"))
    message = f"invalid {where or 'request'}: {first.get('msg', 'invalid')}"
    return JSONResponse(body(message, field=where or None, kind="ValidationError"), status_code=400)


def install(app: FastAPI) -> None:
    app.add_exception_handler(SandboxError, sandbox_error)
    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)
