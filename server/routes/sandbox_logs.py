"""A sandbox's output: GET /v1/sandboxes/{ref}/logs, and the attach WebSocket.

Logs: history, and with ``follow`` what comes until the sandbox ends
(``since``: from a time on; ``stdin``: what was typed too, when it was
logged); as SSE (``format=sse`` or ``Accept: text/event-stream``;
``Last-Event-ID`` resumes), as Docker's multiplexed frames, or as plain
chunked text. For a sandbox of the host that the daemon did not make (admins
only), its log file is read, and followed while its owner lives, as `sandbox
logs -f` does.

Attach (WebSocket ``/v1/sandboxes/{ref}/attach``): the daemon sends each
output record as a binary message, its first byte the stream (1 stdout,
2 stderr), then one text message, the JSON of how it ended (as ``wait``
answers), and closes. The client sends binary messages to the command's
stdin (the sandbox was created with ``stdin=true``; an empty one closes it)
and text messages ``{"signal": "SIGINT"}`` to signal it. A sandbox made
with ``tty`` carries its pty here, as `sandbox run -it` does: binary
messages are keystrokes (Ctrl-C is the byte 0x03, acted on inside), its
screen comes as stdout, and ``{"resize": {"rows": R, "cols": C}}`` (or
``?rows=R&cols=C`` on connecting, or POST .../resize) sets its size.
Closing the WebSocket leaves a sandbox running, except a terminal session
made with ``remove``: its client gone without sending ``{"detach": true}``
first, it is hung up (SIGHUP, SIGKILL 2 s later), as a local one is.

A detached sandbox (made with ``detach``, owned by a supervisor) is
attached through its supervisor (``server.detached``): the same messages,
an end message at each end of a run (``restarting`` says whether another
follows), ``stdin=false`` to only watch, and ``start=true`` to start a
created or stopped one as this connection's first client (`sandbox run
-it`, `start -a`): then the first message says whether it started.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import signal
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, WebSocket, WebSocketDisconnect
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from sandbox import LogRecord, StateError, attach_to, read_log, sandbox_log

from .. import detached
from ..deps import Caller, EngineDep, Reader, authenticate
from ..errors import ApiError
from ..held import Held
from ..models import ERRORS
from ..signals import parse_signal
from ..streams import MULTIPLEXED, SSE_HEADERS, frame, record_sse, text
from .sandboxes import ended, find

router = APIRouter(prefix="/sandboxes", tags=["sandboxes"], responses=ERRORS)
FORMATS = ("text", "sse", "multiplexed")
POLL = 0.1
#: A foreground terminal session whose client went away: SIGHUP, then SIGKILL this much later.
HANGUP_GRACE = 2.0


@router.get("/{ref}/logs", response_class=StreamingResponse, responses={200: {"content": {
    "text/plain": {}, "text/event-stream": {}, MULTIPLEXED: {}}}})
async def logs(ref: str, caller: Reader, engine: EngineDep, follow: bool = False,
               stdout: bool = True, stderr: bool = True, timestamps: bool = False,
               stdin: Annotated[bool, Query(description="also what was typed, when it was "
                                                        "logged (`run -d --log-stdin`)")] = False,
               since: Annotated[float | None, Query(description="only what came at or after "
                                                          "this time (epoch seconds)")] = None,
               format: Annotated[str | None, Query(description="text, sse or multiplexed")] = None,
               accept: Annotated[str | None, Header()] = None,
               last_event_id: Annotated[str | None, Header()] = None) -> StreamingResponse:
    """The sandbox's output (history, then live with ``follow``)."""
    kind = format or ("sse" if "text/event-stream" in (accept or "") else "text")
    if kind not in FORMATS:
        raise ApiError(400, f"invalid format {kind!r}: expected {', '.join(FORMATS)}", field="format")
    if since is not None and not math.isfinite(since):
        raise ApiError(400, f"invalid since {since!r}: expected epoch seconds", field="since")
    start = _resume_index(last_event_id) if kind == "sse" else 0
    streams = {s for s, on in (("stdout", stdout), ("stderr", stderr), ("stdin", stdin)) if on}
    held = find(engine, caller, ref)
    records = (held.logs.follow(start, follow=follow) if held is not None
               else await _file_records(ref, follow))
    body = _encode(records, kind, streams, timestamps, since)
    media = {"sse": "text/event-stream", "multiplexed": MULTIPLEXED}.get(kind, "text/plain")
    return StreamingResponse(body, media_type=media, headers=SSE_HEADERS if kind == "sse" else None)


def _resume_index(last_event_id: str | None) -> int:
    if not last_event_id:
        return 0
    if not last_event_id.strip().isdigit():
        raise ApiError(400, f"invalid Last-Event-ID {last_event_id!r}: expected the id of an "
                       "event this stream sent (a number)", field="Last-Event-ID")
    return int(last_event_id)


async def _encode(records: AsyncIterator[tuple[int, LogRecord]], kind: str, streams: set[str],
                  timestamps: bool, since: float | None) -> AsyncIterator[bytes]:
    async for index, record in records:
        if record.stream not in streams or (since is not None and record.time < since):
            continue
        if kind == "sse":
            yield record_sse(index, record)
        elif kind == "multiplexed":
            yield frame(record)
        else:
            yield text(record, timestamps)


async def _file_records(ref: str, follow: bool) -> AsyncIterator[tuple[int, LogRecord]]:
    """Another sandbox of the host: its log file, followed while it runs."""
    _id, path, running = await run_in_threadpool(sandbox_log, ref)

    async def records() -> AsyncIterator[tuple[int, LogRecord]]:
        seen = 0
        while True:
            try:
                batch = (await run_in_threadpool(lambda: list(read_log(path))))[seen:]
            except FileNotFoundError:
                batch = []
            for record in batch:
                yield seen, record
                seen += 1
            if not follow or not await run_in_threadpool(running):
                return
            await asyncio.sleep(POLL)

    return records()


@router.websocket("/{ref}/attach")
async def attach(websocket: WebSocket, ref: str, engine: EngineDep, logs: bool = True,
                 rows: int | None = None, cols: int | None = None, stdin: bool = True,
                 start: bool = False) -> None:
    """Output out, stdin and signals in, and how it ended (see the module docstring)."""
    try:
        caller = authenticate(websocket, engine)
        if not caller.allows("run"):
            raise ApiError(403, f"token {caller.name!r} lacks the scope 'run'")
        held = _attachable(engine, caller, ref)
        attachment = None
        if held is not None and (rows is not None or cols is not None):
            await run_in_threadpool(held.resize, rows or 0, cols or 0)
        elif held is None and not start:  # refused before the handshake if it does not run
            attachment = await run_in_threadpool(lambda: attach_to(ref, stdin=stdin))
    except Exception as exc:
        await websocket.close(code=1008, reason=str(getattr(exc, "message", exc))[:120])
        return
    await websocket.accept()
    if held is None:
        await detached.attach(websocket, ref, attachment, rows=rows, cols=cols)
        return
    reader = asyncio.create_task(_read_input(websocket, held, engine))
    writer = asyncio.create_task(_send_output(websocket, held, logs))
    try:
        await asyncio.wait({reader, writer}, return_when=asyncio.FIRST_COMPLETED)
        if reader.done() and reader.result() and not writer.done():  # the client went away
            writer.cancel()
            if held.auto_remove and held.tty and reader.result() != "detached":
                await _hang_up(held, engine)
        else:
            await writer
    finally:
        reader.cancel()
        writer.cancel()


async def _send_output(websocket: WebSocket, held: Held, logs: bool) -> None:
    """The output as it comes, then how it ended (a text message), then the close."""
    try:
        start = 0 if logs else len(held.logs.items)
        async for _index, record in held.logs.follow(start):
            await websocket.send_bytes(bytes([1 if record.stream == "stdout" else 2]) + record.data)
        await held.wait_ended()
        await websocket.send_text(json.dumps(ended(held)))
        await websocket.close()
    except (WebSocketDisconnect, RuntimeError):
        pass  # the client went away meanwhile


async def _hang_up(held: Held, engine: Any) -> None:
    """A terminal session in the foreground (`sandbox run -it` through the daemon, made with
    ``remove``) whose client went away before its end: a hangup, as when a terminal closes:
    SIGHUP to the command, SIGKILL HANGUP_GRACE seconds later. The sandbox ends."""
    try:
        await run_in_threadpool(engine.sandboxes.kill, held, signal.SIGHUP)
        await asyncio.wait_for(held.wait_ended(), HANGUP_GRACE)
        return
    except StateError:
        return  # it ended meanwhile
    except TimeoutError:
        pass
    with contextlib.suppress(StateError):
        await run_in_threadpool(engine.sandboxes.kill, held, signal.SIGKILL)


def _attachable(engine: Any, caller: Caller, ref: str) -> Held | None:
    """The held sandbox, or None for a detached one the caller may attach to (409 for another
    of the host's, which has nothing to attach to)."""
    held = find(engine, caller, ref)
    if held is None and not detached.owner_of(ref)[0]:
        raise ApiError(409, f"sandbox {ref} was not made by this daemon: it cannot be attached to")
    return held


async def _read_input(websocket: WebSocket, held: Held, engine: Any) -> bool | str:
    """stdin bytes (keystrokes), signals and resizes from the client, until it closes (True),
    detaches (``detached``: no hangup) or its input cannot go anywhere any more (False: the
    command ended)."""
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return True
            if message.get("bytes") is not None:
                await run_in_threadpool(held.write_stdin, message["bytes"])
            elif message.get("text"):
                if _is_detach(message["text"]):
                    return "detached"
                await _control(message["text"], held, engine)
    except (WebSocketDisconnect, RuntimeError, OSError):
        return True
    except Exception:  # the sandbox ended meanwhile (input refused): nothing more to pass on
        return False


def _is_detach(text: str) -> bool:
    try:
        return bool(json.loads(text).get("detach"))
    except (ValueError, AttributeError):
        return False


async def _control(text: str, held: Held, engine: Any) -> None:
    """A text message: ``{"signal": NAME}`` or ``{"resize": {"rows": R, "cols": C}}``. One
    that is not understood, or not possible now (no terminal), is dropped: the session goes on."""
    try:
        request = json.loads(text)
        if "signal" in request:
            await run_in_threadpool(engine.sandboxes.kill, held, parse_signal(str(request["signal"])))
        if "resize" in request:
            size = request["resize"]
            await run_in_threadpool(held.resize, int(size["rows"]), int(size["cols"]))
    except (ValueError, KeyError, TypeError, AttributeError, ApiError, StateError):
        pass
