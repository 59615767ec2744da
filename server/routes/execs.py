"""Execs: POST /v1/sandboxes/{ref}/exec, GET /v1/execs/{id}, the WebSocket /v1/execs/{id}/attach.

The attach WebSocket starts the exec (once) and is its session: first one
text message, whether it started (``{"event": "started"}``, or
``{"event": "failed", "error", "exit_status"}`` and the close); then its
output as binary messages (first byte 1 stdout, 2 stderr; a terminal's
screen is stdout), then one text message, how it ended (``exit_code``,
``message``), and the close. The client sends binary messages to its
stdin (an empty one closes it), ``{"resize": {"rows", "cols"}}`` and
``{"signal": NAME}``. Closing the WebSocket before the end kills it.
See ``server.execs``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal as signals
from typing import Any

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from starlette.concurrency import run_in_threadpool

from sandbox import SandboxError, StateError

from ..deps import Caller, EngineDep, Reader, Runner, authenticate
from ..errors import ApiError
from ..execs import ExecEntry
from ..models import ERRORS, ExecCreate, ExecCreated, ExecDetail
from ..signals import parse_signal
from .sandboxes import find

router = APIRouter(tags=["execs"], responses=ERRORS)


def no_such_exec(exec_id: str) -> ApiError:
    return ApiError(404, f"no such exec: {exec_id} (POST /v1/sandboxes/{{ref}}/exec makes one)")


def visible(engine: Any, caller: Caller, exec_id: str) -> ExecEntry:
    entry = engine.execs.get(exec_id)
    if entry is None or not caller.sees(entry.owner):
        raise no_such_exec(exec_id)
    return entry


@router.post("/sandboxes/{ref}/exec", status_code=201, response_model=ExecCreated)
async def create(ref: str, body: ExecCreate, caller: Runner, engine: EngineDep) -> dict[str, Any]:
    """Make an exec in the running sandbox (409 if it does not run); its attach starts it."""
    find(engine, caller, ref)  # 404 for a sandbox the caller may not see
    if (body.rows is None) != (body.cols is None):
        raise ApiError(400, "a terminal size needs both rows and cols", field="rows")
    size = (body.rows, body.cols) if body.rows and body.cols else None
    entry = await run_in_threadpool(lambda: engine.execs.create(
        ref, caller.name, command=body.command, env=body.env, workdir=body.workdir,
        user=body.user, tty=body.tty, interactive=body.interactive, size=size))
    return {"id": entry.id}


@router.get("/execs/{exec_id}", response_model=ExecDetail)
async def inspect(exec_id: str, caller: Reader, engine: EngineDep) -> dict[str, Any]:
    """Its state: created, running (its pid on the host) or exited (its exit status)."""
    return visible(engine, caller, exec_id).summary()


@router.websocket("/execs/{exec_id}/attach")
async def attach(websocket: WebSocket, exec_id: str, engine: EngineDep) -> None:
    """Start the exec and carry its session (see the module docstring)."""
    try:
        caller = authenticate(websocket, engine)
        if not caller.allows("run"):
            raise ApiError(403, f"token {caller.name!r} lacks the scope 'run'")
        entry = visible(engine, caller, exec_id)
        if entry.status != "created":
            raise StateError(f"exec {exec_id} was started already")
    except Exception as exc:
        await websocket.close(code=1008, reason=str(getattr(exc, "message", exc))[:120])
        return
    await websocket.accept()
    try:
        await run_in_threadpool(engine.execs.start, entry)
    except SandboxError as exc:
        await websocket.send_text(json.dumps({"event": "failed", "error": str(exc),
                                              "exit_status": exc.exit_status}))
        await websocket.close()
        return
    await websocket.send_text(json.dumps({"event": "started", "id": entry.id}))
    await _session(websocket, entry)


async def _session(websocket: WebSocket, entry: ExecEntry) -> None:
    reader = asyncio.create_task(_read_input(websocket, entry))
    writer = asyncio.create_task(_send_output(websocket, entry))
    try:
        await asyncio.wait({reader, writer}, return_when=asyncio.FIRST_COMPLETED)
        if not writer.done():  # the client went away before the end: the exec dies with it
            writer.cancel()
            with contextlib.suppress(StateError):
                await run_in_threadpool(entry.exe.kill, signals.SIGKILL)
    finally:
        reader.cancel()
        writer.cancel()


async def _send_output(websocket: WebSocket, entry: ExecEntry) -> None:
    try:
        async for _index, record in entry.logs.follow(0):
            await websocket.send_bytes(bytes([1 if record.stream == "stdout" else 2]) + record.data)
        await websocket.send_text(json.dumps(entry.end()))
        await websocket.close()
    except (WebSocketDisconnect, RuntimeError):
        pass


async def _read_input(websocket: WebSocket, entry: ExecEntry) -> None:
    """Input, resizes and signals, until the client goes away (input the exec no longer
    takes is dropped: its end is on its way)."""
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            if message.get("bytes") is not None:
                with contextlib.suppress(SandboxError, OSError):
                    await run_in_threadpool(entry.write_stdin, message["bytes"])
            elif message.get("text"):
                await _control(message["text"], entry)
    except (WebSocketDisconnect, RuntimeError, OSError):
        return


async def _control(text: str, entry: ExecEntry) -> None:
    try:
        request = json.loads(text)
        if "resize" in request and entry.tty:
            size = request["resize"]
            await run_in_threadpool(entry.exe.resize, int(size["rows"]), int(size["cols"]))
        if "signal" in request:
            await run_in_threadpool(entry.exe.kill, parse_signal(str(request["signal"])))
    except (ValueError, KeyError, TypeError, AttributeError, ApiError, SandboxError, OSError):
        pass
