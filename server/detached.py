"""The daemon's detached sandboxes: handed to the same per-sandbox supervisors the CLI uses.

How the daemon holds long-lived sandboxes (the choice, and why):

- A sandbox that outlives its request (``POST /v1/sandboxes?detach=true``:
  `sandbox run -d`, and `run -t` through the daemon) is not held in the
  daemon's process: the daemon starts a supervisor for it
  (``sandbox.run_detached``), exactly as the embedded `sandbox run -d`
  does, and from then on acts on it through that supervisor: start, stop,
  restart, kill, wait, remove, attach, exec are the engine's own verbs.
- So there is one truth for a detached sandbox's state: its supervisor
  and its status file, the same ones `sandbox ps -a`, `sandbox stop` or
  `sandbox attach` read on the host; the daemon keeps no copy. Who made
  it (the token's name) is written in its supervisor options (``owner``),
  so a token sees only its own, also after the daemon restarts.
- A daemon killed with SIGKILL takes none of them along: their supervisors
  are processes of their own session, and the next daemon finds them on
  disk (its start's gc leaves a sandbox alone while its supervisor lives).
  A foreground terminal session (`run -it`) whose daemon dies is a closed
  terminal: its supervisor hangs the command up, as for a killed client.

What the daemon still holds itself (``server.held``) are sandboxes whose
life is one request: `sandbox run` and `run -i` in the foreground, the
console's terminals, a class's seats. They end with the daemon.

The attach WebSocket of a detached sandbox is a bridge to an attachment of
its supervisor (``sandbox.supervisor.protocol``): the supervisor's output
frames become binary messages (first byte 1 stdout, 2 stderr) and its end
of each run a text message (``exit_code``, ``message``, ``restarting``);
keystrokes, resizes, signals and ``{"detach": true}`` go the other way.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from typing import Any

from fastapi import WebSocket, WebSocketDisconnect
from starlette.concurrency import run_in_threadpool

from sandbox import (
    RestartPolicy,
    SandboxError,
    SandboxSpec,
    StateError,
    SupervisorOptions,
    create_detached,
    kill_sandbox,
    run_detached,
    sandbox_rows,
    start_sandbox,
    supervised_status,
)

from .errors import ApiError
from .signals import parse_signal


def owner_of(ref: str) -> tuple[bool, str | None]:
    """(whether ``ref`` names a detached sandbox, its owner's name)."""
    try:
        info = supervised_status(ref)
    except SandboxError:
        return False, None
    if info is None:
        return False, None
    return True, info["options"].get("owner")


def options(*, owner: str, remove: bool, restart: str, foreground: bool, log_stdin: bool,
            rows: int | None, cols: int | None) -> SupervisorOptions:
    """The supervisor's options for a sandbox made through the daemon (SpecError: bad ones)."""
    size = {"tty_size": (rows or 0, cols or 0)} if rows is not None or cols is not None else {}
    return SupervisorOptions(auto_remove=remove, restart=RestartPolicy.parse(restart),
                             foreground=foreground, log_stdin=log_stdin, owner=owner, **size)


def create(spec: SandboxSpec, opts: SupervisorOptions, *, start: bool) -> tuple[str, str]:
    """Make the detached sandbox (and start it, returning once its command runs): (id, status)."""
    if start:
        return run_detached(spec, opts).id, "running"
    return create_detached(spec, opts), "created"


def detail(ref: str) -> dict[str, Any]:
    """What GET /v1/sandboxes/{ref} says of a detached sandbox: its `ps -a` row and its status."""
    info = supervised_status(ref)
    assert info is not None
    row = next(r for r in sandbox_rows(include_orphans=True) if r["id"] == info["id"])
    spec, opts = info["spec"], info["options"]
    return {**row, "spec": spec, "exit_code": info["exit_code"], "error": info["message"],
            "terminal": "pty" if spec.get("tty") else "pipe" if spec.get("interactive") else None,
            "detached": {"state": info["state"], "restart": str(RestartPolicy(**opts["restart"])),
                         "restarts": info["restarts"], "auto_remove": opts["auto_remove"],
                         "started_at": info["started_at"], "finished_at": info["finished_at"]}}


def ended(ref: str, exit_code: int | None) -> dict[str, Any]:
    """How a detached sandbox ended, in WaitResponse's shape."""
    try:
        info = supervised_status(ref)
    except SandboxError:
        info = None  # removed at its end (--rm)
    return {"id": info["id"] if info else ref, "exit_code": exit_code, "result": None,
            "message": info["message"] if info else None, "summary": None, "error": None}


# -- the attach WebSocket ------------------------------------------------------------------


async def attach(websocket: WebSocket, ref: str, attachment: Any, *, rows: int | None,
                 cols: int | None) -> None:
    """Bridge the (accepted) WebSocket to ``attachment`` (``sandbox.attach_to``) until either
    ends; without one, start the sandbox with this connection its first client (`sandbox
    run -it`, `start -a`): the first message then says whether it started
    (``{"event": "started"}`` or ``{"event": "failed", "error", "exit_status"}``)."""
    if attachment is None:
        try:
            launched = await run_in_threadpool(lambda: start_sandbox(ref, attach=True))
        except SandboxError as exc:
            await websocket.send_text(json.dumps({"event": "failed", "error": str(exc),
                                                  "exit_status": exc.exit_status}))
            await websocket.close()
            return
        attachment = launched.attachment
        await websocket.send_text(json.dumps({"event": "started", "id": launched.id,
                                              "tty": launched.tty}))
    if rows and cols and attachment.tty:
        await run_in_threadpool(attachment.resize, rows, cols)
    await _bridge(websocket, attachment, ref)


async def _bridge(websocket: WebSocket, attachment: Any, ref: str) -> None:
    loop = asyncio.get_running_loop()
    frames: asyncio.Queue[list[tuple[str, bytes]] | None] = asyncio.Queue()

    def read() -> None:  # the attachment's socket blocks: a thread of its own reads it
        while True:
            got = attachment.read_events()
            loop.call_soon_threadsafe(frames.put_nowait, got)
            if got is None:
                return

    reader = threading.Thread(target=read, name=f"attach-{attachment.id}", daemon=True)
    reader.start()
    inputs = asyncio.create_task(_client_messages(websocket, attachment, ref))
    outputs = asyncio.create_task(_supervisor_frames(websocket, frames))
    try:
        await asyncio.wait({inputs, outputs}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        inputs.cancel()
        outputs.cancel()
        if inputs.done() and not inputs.cancelled() and inputs.result() == "detached":
            await run_in_threadpool(attachment.detach)
        await run_in_threadpool(_close, attachment, reader)
        with contextlib.suppress(RuntimeError, WebSocketDisconnect):
            await websocket.close()


def _close(attachment: Any, reader: threading.Thread) -> None:
    """Close the supervisor's connection (without a detach: a foreground session's hangup)."""
    with contextlib.suppress(OSError):
        attachment.sock.shutdown(2)
    attachment.close()
    reader.join(10)


async def _supervisor_frames(websocket: WebSocket,
                             frames: asyncio.Queue[list[tuple[str, bytes]] | None]) -> None:
    """Output as binary messages, each run's end as a text one, until the supervisor closes."""
    try:
        while (batch := await frames.get()) is not None:
            for kind, payload in batch:
                if kind in ("stdout", "stderr"):
                    await websocket.send_bytes((b"\x01" if kind == "stdout" else b"\x02") + payload)
                else:
                    await websocket.send_text(payload.decode())
    except (WebSocketDisconnect, RuntimeError):
        pass  # the client went away meanwhile


async def _client_messages(websocket: WebSocket, attachment: Any, ref: str) -> str:
    """Keystrokes (binary; an empty one closes stdin), resizes, signals and a detach, until
    the client detaches (``detached``) or goes away (``gone``)."""
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return "gone"
            data = message.get("bytes")
            if data is not None:
                send = attachment.send_input if data else attachment.close_input
                await run_in_threadpool(send, *((data,) if data else ()))
            elif message.get("text") and await _control(message["text"], attachment, ref):
                return "detached"
    except (WebSocketDisconnect, RuntimeError, OSError):
        return "gone"


async def _control(text: str, attachment: Any, ref: str) -> bool:
    """A text message (``resize``, ``signal``, ``detach``); True for a detach. One not
    understood, or not possible now, is dropped: the session goes on."""
    try:
        request = json.loads(text)
        if request.get("detach"):
            return True
        if "resize" in request:
            size = request["resize"]
            await run_in_threadpool(attachment.resize, int(size["rows"]), int(size["cols"]))
        if "signal" in request:
            await run_in_threadpool(kill_sandbox, ref, parse_signal(str(request["signal"])))
    except (ValueError, KeyError, TypeError, AttributeError, ApiError, StateError, OSError):
        pass
    return False
