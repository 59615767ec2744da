"""A job's log: live as SSE (``Last-Event-ID`` resumes), and Jenkins-style progressive text.

SSE: ``GET /v1/jobs/{id}/log``, one event per log event (``jobs.events``),
its ``id`` the event's sequence number (from 1, no gaps), its data the
event as JSON; the last one is ``eof`` with the verdict. A client that lost
the connection sends the last id it saw as ``Last-Event-ID`` (or
``?after=N``) and gets exactly the events after it: none lost, none twice.

``?service=NAME`` (both forms): only that service's output, as `sandbox jobs
logs ID --service NAME` shows it (SSE ids keep the events' own numbers, so
they have gaps there, and Last-Event-ID resumes as well).

Progressive text: ``GET /v1/jobs/{id}/log/text?start=N`` answers the log as
the CLI prints it, from byte N to what there is now, with ``X-Text-Size``
(the offset to ask for next) and ``X-More-Data: true`` while the job runs,
as Jenkins' ``progressiveText`` does: curl or Jenkins tooling can follow a
build by asking again.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Header, Query
from fastapi.responses import Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from jobs import FINAL, LogEvent

from ..deps import Caller, EngineDep, Reader
from ..engine import Engine
from ..errors import ApiError
from ..models import ERRORS
from ..streams import SSE_HEADERS, render, sse
from .jobs import visible_fields

router = APIRouter(prefix="/jobs", tags=["jobs"], responses=ERRORS)
Service = Annotated[str | None, Query(description="only the output of the job's service NAME")]


@router.get("/{job_id}/log", response_class=StreamingResponse,
            responses={200: {"content": {"text/event-stream": {}}}})
async def log(job_id: str, caller: Reader, engine: EngineDep, follow: bool = True,
              after: Annotated[int, Query(ge=0)] = 0, service: Service = None,
              last_event_id: Annotated[str | None, Header()] = None) -> StreamingResponse:
    """The job's events as Server-Sent Events, from after ``Last-Event-ID`` (or ``after``)."""
    if last_event_id is not None:
        if not last_event_id.strip().isdigit():
            raise ApiError(400, f"invalid Last-Event-ID {last_event_id!r}: expected the id of "
                           "an event this stream sent (a number)", field="Last-Event-ID")
        after = int(last_event_id)
    await run_in_threadpool(visible_fields, engine, caller, job_id)
    events = engine.jobs.events(job_id, after, follow=follow)
    return StreamingResponse(_sse(events, service), media_type="text/event-stream",
                             headers=SSE_HEADERS)


def _shown(event: LogEvent, service: str | None) -> bool:
    """All events, or only the service's output (and the eof that ends every log)."""
    return service is None or event.kind == "eof" or (
        event.kind == "out" and event.fields.get("service") == service)


async def _sse(events: AsyncIterator[LogEvent], service: str | None) -> AsyncIterator[bytes]:
    async for event in events:
        if _shown(event, service):
            yield sse(event.kind, event.seq, event.to_json())


@router.get("/{job_id}/log/text", response_class=Response,
            responses={200: {"content": {"text/plain": {}}, "headers": {
                "X-Text-Size": {"description": "the byte offset to ask for next (start=)",
                                "schema": {"type": "integer"}},
                "X-More-Data": {"description": "true while the job runs",
                                "schema": {"type": "string"}}}}})
async def log_text(job_id: str, caller: Reader, engine: EngineDep,
                   start: Annotated[int, Query(ge=0)] = 0, service: Service = None) -> Response:
    """The log as text from byte ``start``; X-Text-Size and X-More-Data say how to go on."""
    text, running = await _text(engine, caller, job_id, service)
    start = min(start, len(text))
    return Response(text[start:], media_type="text/plain; charset=utf-8",
                    headers={"X-Text-Size": str(len(text)),
                             "X-More-Data": "true" if running else "false"})


async def _text(engine: Engine, caller: Caller, job_id: str,
                service: str | None) -> tuple[bytes, bool]:
    fields = await run_in_threadpool(visible_fields, engine, caller, job_id)
    running = fields.get("status") not in FINAL
    events = [e async for e in engine.jobs.events(job_id, 0, follow=False)
              if e.kind != "eof" and _shown(e, service)]
    return render(events, service), running
