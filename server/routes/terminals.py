"""A sandbox's terminal for the web console: raw bytes over a WebSocket, resize beside it.

``/v1/sandboxes/{ref}/terminal`` (WebSocket) is the attach xterm.js takes
as it is (``@xterm/addon-attach``): binary messages out, the output as the
command wrote it, the last part of it first (a page that reconnects shows
the screen again); messages in, binary or text, are keystrokes. No framing,
no JSON: what is not bytes goes beside it, as Docker does (``POST
.../resize``; a signal through ``.../kill``). The sandbox must take input
(created with ``stdin=true``, or with a terminal once the engine makes
one); ``mode=watch`` only reads. It closes with code 4000 when the sandbox
has ended (the reason says how). See ``server.terminal``.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response, WebSocket
from starlette.concurrency import run_in_threadpool

from .. import terminal as terminals
from ..deps import EngineDep, Runner, authenticate
from ..errors import ApiError
from ..models import ERRORS
from .sandboxes import held_or_409

router = APIRouter(prefix="/sandboxes", tags=["sandboxes"], responses=ERRORS)


@router.websocket("/{ref}/terminal")
async def terminal(websocket: WebSocket, ref: str, engine: EngineDep, mode: str = "control") -> None:
    try:
        caller = authenticate(websocket, engine)
        if mode not in ("control", "watch"):
            raise ApiError(400, f"invalid mode {mode!r}: expected control or watch")
        scope = "run" if mode == "control" else "read"
        if not caller.allows(scope):
            raise ApiError(403, f"token {caller.name!r} lacks the scope {scope!r}")
        held = held_or_409(engine, caller, ref)
    except Exception as exc:
        await websocket.close(code=1008, reason=str(getattr(exc, "message", exc))[:120])
        return
    await terminals.serve(websocket, terminals.Terminal.of(held), "owner", write=mode == "control")


@router.post("/{ref}/resize", status_code=204)
async def resize(ref: str, caller: Runner, engine: EngineDep,
                 rows: Annotated[int, Query(ge=1, le=999)], cols: Annotated[int, Query(ge=1, le=999)]) -> Response:
    """The terminal's size, as Docker's ``/containers/{id}/resize`` (h, w): the command on a
    pty gets SIGWINCH; without a pty it is only noted."""
    held = held_or_409(engine, caller, ref)
    await run_in_threadpool(terminals.Terminal.of(held).resize, rows, cols)
    return Response(status_code=204)
