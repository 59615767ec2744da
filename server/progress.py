"""Long image work (build, pull, push) answered as it goes: progress lines, then the outcome.

The work runs on a thread of its own and writes its progress as text (the
lines `sandbox build`/`pull`/`push` print); the answer is NDJSON, one object
a line::

    {"progress": "[2/3] RUN make"}          as many as the work prints
    {"result": {...}}                        the last line when it succeeded
    {"error": {"message": ..., "exit_status": ..., "kind": ..., "tail": [...]}}

An error before the first progress line (a bad reference, no such image, a
Sandboxfile that does not parse) is answered as any other route's: its
HTTP status and the one-line JSON body. Memory is bounded: the thread
waits while the client is slow. A client that went away before the end
(starlette notices the disconnect and cancels the answer) is no longer
written to, and ``on_gone`` is called: a build is cancelled then
(``sandbox.BuildCancel``); work without it runs to its end (nothing is left
half-made either way).
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any, TextIO, cast

from fastapi.responses import JSONResponse, Response, StreamingResponse

from sandbox import BuildStepFailed, SandboxError

from .errors import body, status_of

log = logging.getLogger("sandbox.daemon")
NDJSON = "application/x-ndjson"
#: Lines in flight at most, between the work's thread and the client.
WINDOW = 256
#: What the OpenAPI document says a line of the answer is.
LINE_SCHEMA: dict[str, Any] = {
    "type": "object", "description": "one line of NDJSON: progress, then result or error",
    "properties": {"progress": {"type": "string"}, "result": {"type": "object"},
                   "error": {"type": "object"}}}
STREAMED: dict[int | str, dict[str, Any]] = {
    200: {"description": "progress lines, then the result or the error (NDJSON)",
          "content": {NDJSON: {"schema": LINE_SCHEMA}}}}

Work = Callable[[TextIO], dict[str, Any]]
ErrorText = Callable[[SandboxError], str]


class Channel:
    """Items from a thread to the event loop, at most WINDOW in flight."""

    def __init__(self, loop: asyncio.AbstractEventLoop,
                 on_gone: Callable[[], None] | None = None) -> None:
        self.loop = loop
        self.items: asyncio.Queue[dict[str, Any] | BaseException | None] = asyncio.Queue()
        self.room = threading.Semaphore(WINDOW)
        self.gone = threading.Event()
        self.ended = False  # the work's last item (None) was read
        self.on_gone = on_gone

    def leave(self) -> None:
        """The reader stops reading: the work is told, if it has not ended."""
        self.gone.set()
        if not self.ended and self.on_gone is not None:
            log.warning("the client went away before the end: cancelling the work")
            self.on_gone()

    def put(self, item: dict[str, Any] | BaseException | None) -> None:
        """From the work's thread: wait for room, unless the reader went away."""
        while not self.room.acquire(timeout=0.5):
            if self.gone.is_set():
                return
        if self.gone.is_set():
            return
        try:
            self.loop.call_soon_threadsafe(self.items.put_nowait, item)
        except RuntimeError:  # the loop closed: the daemon is stopping
            self.gone.set()

    async def get(self) -> dict[str, Any] | BaseException | None:
        item = await self.items.get()
        self.room.release()
        self.ended = self.ended or item is None
        return item


class LineWriter:
    """A text stream (write, flush) whose complete lines become progress items."""

    def __init__(self, channel: Channel) -> None:
        self.channel = channel
        self.partial = ""

    def write(self, text: str, /) -> int:
        *lines, self.partial = (self.partial + text).split("\n")
        for line in lines:
            self.channel.put({"progress": line})
        return len(text)

    def flush(self) -> None:
        """Lines go as they are completed; nothing is held but a partial line."""

    def isatty(self) -> bool:
        return False

    def close(self) -> None:
        if self.partial:
            self.channel.put({"progress": self.partial})
            self.partial = ""


def error_fields(exc: SandboxError, text: ErrorText) -> dict[str, Any]:
    """The error as the CLI reports it: its text, exit status and, for a failed step, its tail."""
    return body(text(exc), field=getattr(exc, "field", None), exit_status=exc.exit_status,
                kind=type(exc).__name__) | {"tail": list(getattr(exc, "tail", ()) or ())
                                             if isinstance(exc, BuildStepFailed) else []}


def _run(work: Work, channel: Channel, text: ErrorText) -> None:
    writer = LineWriter(channel)
    try:
        result = work(cast(TextIO, writer))  # write, flush and isatty are all it is asked
        writer.close()
        channel.put({"result": result})
    except SandboxError as exc:
        writer.close()
        channel.put({"error": error_fields(exc, text), "status": status_of(exc)})
    except BaseException as exc:  # a bug: a 500 before the stream began, a logged error line after
        writer.close()
        channel.put(exc)
    finally:
        channel.put(None)


async def streamed(work: Work, *, error_text: ErrorText = str,
                   on_gone: Callable[[], None] | None = None) -> Response:
    """``work(out)`` on a thread, its progress streamed; an early error as a plain error answer.
    ``on_gone``: called (from the event loop) when the client leaves before the work's end."""
    channel = Channel(asyncio.get_running_loop(), on_gone)
    threading.Thread(target=_run, args=(work, channel, error_text), name="image-work",
                     daemon=True).start()
    try:
        first = await channel.get()
    except asyncio.CancelledError:
        channel.leave()
        raise
    if isinstance(first, BaseException):
        channel.gone.set()
        raise first
    if first is not None and "error" in first:
        channel.gone.set()
        return JSONResponse(first["error"], status_code=first["status"])
    return StreamingResponse(_lines(first, channel), media_type=NDJSON)


async def _lines(first: dict[str, Any] | None, channel: Channel) -> AsyncIterator[bytes]:
    item: dict[str, Any] | BaseException | None = first
    try:
        while item is not None:
            if isinstance(item, BaseException):
                log.error("image work failed", exc_info=item)
                item = {"error": body(f"internal error: {item!r}", kind=type(item).__name__)}
            item.pop("status", None)
            yield (json.dumps(item) + "\n").encode()
            item = await channel.get()
    finally:
        channel.leave()
