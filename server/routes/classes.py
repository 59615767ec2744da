"""/v1/classes: teaching classes (make, list, show, extend, end) and each student's seat.

A class is made by a token with the ``run`` scope (its teacher, who alone,
with admins, sees it). Making one answers each student's token once, and
the URL of their terminal page (``/console/student/CLASS/STUDENT#TOKEN``:
the token rides in the fragment, which browsers never send). A student
token opens that student's seat and nothing else: its terminal, its state,
a restart of its sandbox; any other class, seat or route of the API
answers 404 or 403, as for a stranger. The teacher may watch any seat or
take over its keyboard, reset it, download its recordings.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, WebSocket
from fastapi.responses import FileResponse
from pydantic import Field
from starlette.concurrency import run_in_threadpool

from sandbox import StateError, parse_duration

from .. import terminal as terminals
from ..classes.room import Classroom, Seat
from ..classes.spec import ClassSpec
from ..deps import TRANSPORT_KEY, AnyCaller, Caller, EngineDep, Reader, Runner, authenticate
from ..engine import Engine
from ..errors import ApiError
from ..models import ERRORS, Strict

router = APIRouter(prefix="/classes", tags=["classes"], responses=ERRORS)
Size = int | float | str | None


class ClassCreate(Strict):
    """As `sandbox class create`'s flags."""

    name: str
    students: int
    image: str
    ttl: float | str | None = Field(default=None, description="e.g. 2h (the default), 90m")
    memory: Size = "256m"
    cpus: float | str | None = 0.25
    disk: Size = "512m"
    pids: int | str | None = 256
    network: str = Field(default="none", description="none, or class (one bridge for the class)")
    home_volume: bool = False
    keep_recordings: bool = False
    userns: bool | None = Field(default=None, description="a user namespace per student sandbox "
                                "(default: on when the engine has them; refused when it has not)")
    shell: list[str] | None = None


def _room(engine: Engine, caller: Caller, name: str) -> Classroom:
    """The class, if the caller is its teacher (or an admin); 404 as for none otherwise."""
    room = engine.classes.get(name)
    if not caller.sees(room.owner):
        raise StateError(f"no such class: {name}", hint="`sandbox class ls` lists them")
    return room


def seat_for(engine: Engine, caller: Caller, name: str, student: str) -> tuple[Classroom, Seat, str]:
    """(class, seat, role): ``owner`` for the student themself, ``teacher`` for the class's
    teacher; anyone else is told there is no such seat."""
    if caller.student is not None:
        if caller.student != (name, student):
            raise ApiError(404, f"no such seat: {name}/{student}")
        room = engine.classes.get(name)
        return room, room.seats[student], "owner"
    room = _room(engine, caller, name)
    seat = room.seats.get(student)
    if seat is None:
        raise ApiError(404, f"no such seat: {name}/{student}")
    return room, seat, "teacher"


def base_url(request: Request) -> str:
    """Where a browser reaches this daemon: the request's own URL on TCP, else the TCP
    listener's (empty: the daemon listens on its unix socket only)."""
    if request.scope.get(TRANSPORT_KEY) != "unix":
        return str(request.base_url).rstrip("/")
    return getattr(request.app.state, "public_url", "") or ""


@router.post("", status_code=201)
async def create(body: ClassCreate, caller: Runner, engine: EngineDep, request: Request) -> dict[str, Any]:
    """Make the class: every student's sandbox started, each token and URL answered once."""
    spec = ClassSpec.from_request(body.model_dump(exclude_unset=True) | {
        "name": body.name, "students": body.students, "image": body.image})
    room, tokens = await run_in_threadpool(engine.classes.create, spec, caller.name)
    base = base_url(request)
    return {**room.summary(), "students": [
        {"name": student, "token": token,
         "url": f"{base}/console/student/{room.name}/{student}#{token}"}
        for student, token in tokens.items()]}


@router.get("")
async def list_classes(caller: Reader, engine: EngineDep) -> list[dict[str, Any]]:
    return [room.summary() for room in engine.classes.all() if caller.sees(room.owner)]


@router.get("/{name}")
async def show(name: str, caller: Reader, engine: EngineDep) -> dict[str, Any]:
    """The class and each seat: its sandbox, who is connected, CPU and memory now."""
    room = _room(engine, caller, name)
    seats = await run_in_threadpool(lambda: [
        {**usage(seat), "recordings": [int(p.name.split(".")[1]) for p in room.recording_files(seat.name)]}
        for seat in room.seats.values()])
    return {**room.summary(), "spec": room.spec.to_dict(), "seats": seats}


def usage(seat: Seat) -> dict[str, Any]:
    """A seat's row with its sandbox's CPU (percent of one core since the last look) and memory."""
    row = seat.row()
    held = seat.held
    cgroup = held.sandbox.cgroup if held is not None and held.status == "running" else None
    if cgroup is None:
        return {**row, "cpu_percent": None, "memory": None}
    stats = cgroup.stats()
    now, cpu = time.monotonic(), stats.cpu_total or 0.0
    percent = None
    if seat.cpu_sample is not None and now > seat.cpu_sample[0]:
        percent = round(100 * (cpu - seat.cpu_sample[1]) / (now - seat.cpu_sample[0]), 1)
    seat.cpu_sample = (now, cpu)
    return {**row, "cpu_percent": percent, "cpu_seconds": cpu, "memory": stats.memory_current}


@router.post("/{name}/extend")
async def extend(name: str, caller: Runner, engine: EngineDep,
                 by: Annotated[str, Query(description="a duration, e.g. 30m")] = "30m") -> dict[str, Any]:
    room = _room(engine, caller, name)
    seconds = parse_duration("extension", by)
    if not seconds:
        raise ApiError(400, f"invalid extension {by!r}: expected a duration like 30m", field="by")
    engine.classes.extend(room, seconds)
    return room.summary()


@router.delete("/{name}")
async def end(name: str, caller: Runner, engine: EngineDep) -> dict[str, Any]:
    """End the class now: sandboxes, tokens, network, files (recordings unless kept)."""
    room = _room(engine, caller, name)
    await run_in_threadpool(engine.classes.end, room.name)
    return {"name": room.name, "ended": True,
            "recordings": str(room.recordings) if room.spec.keep_recordings else None}


@router.get("/{name}/students/{student}")
async def seat(name: str, student: str, caller: AnyCaller, engine: EngineDep) -> dict[str, Any]:
    """The seat as its student (``role`` owner) or the teacher sees it: its terminal's mode,
    who is connected, who holds the keyboard."""
    _, seat, role = seat_for(engine, caller, name, student)
    terminal = seat.terminal
    return {**seat.row(), "role": role, "class": name,
            "terminal": terminal.info() if terminal else None}


@router.post("/{name}/students/{student}/reset")
async def reset(name: str, student: str, caller: AnyCaller, engine: EngineDep) -> dict[str, Any]:
    """A fresh sandbox from the image for the seat (the home stays with --home-volume)."""
    room, seat, _role = seat_for(engine, caller, name, student)
    await run_in_threadpool(engine.classes.reset, room, seat.name)
    return seat.row()


@router.post("/{name}/students/{student}/resize", status_code=204)
async def resize(name: str, student: str, caller: AnyCaller, engine: EngineDep,
                 rows: Annotated[int, Query(ge=1, le=999)], cols: Annotated[int, Query(ge=1, le=999)]) -> None:
    """The terminal's size (with a pty, the shell sees it; the recording notes it)."""
    _, seat, role = seat_for(engine, caller, name, student)
    if seat.terminal is not None and seat.terminal.may_type(role):
        await run_in_threadpool(seat.terminal.resize, rows, cols)


@router.post("/{name}/students/{student}/interrupt", status_code=204)
async def interrupt(name: str, student: str, caller: AnyCaller, engine: EngineDep) -> None:
    """Ctrl-C on a terminal without a pty: SIGINT to the shell."""
    _, seat, role = seat_for(engine, caller, name, student)
    if seat.terminal is not None:
        await seat.terminal.interrupt(role)


@router.get("/{name}/students/{student}/recordings")
async def recordings(name: str, student: str, caller: Reader, engine: EngineDep) -> list[dict[str, Any]]:
    room, seat, _role = seat_for(engine, caller, name, student)
    return [{"n": int(p.name.split(".")[1]), "size": p.stat().st_size, "file": p.name}
            for p in room.recording_files(seat.name)]


@router.get("/{name}/students/{student}/recordings/{n}", response_class=FileResponse,
            responses={200: {"content": {"application/x-asciicast": {}}}})
async def recording(name: str, student: str, n: int, caller: Reader, engine: EngineDep) -> FileResponse:
    """One session's asciicast v2 file (`asciinema play` it)."""
    room, seat, _role = seat_for(engine, caller, name, student)
    path = Path(room.recordings / f"{seat.name}.{n}.cast")
    if not path.exists():
        raise ApiError(404, f"no recording {n} of {name}/{student}")
    return FileResponse(path, media_type="application/x-asciicast", filename=path.name)


@router.websocket("/{name}/students/{student}/terminal")
async def terminal(websocket: WebSocket, name: str, student: str, engine: EngineDep,
                   mode: str = "control") -> None:
    """The seat's terminal: the student types; the teacher watches (``mode=watch``) or takes
    the keyboard over (``mode=control``) until they close it."""
    try:
        _, seat, role = seat_for(engine, authenticate(websocket, engine), name, student)
        if mode not in ("control", "watch"):
            raise ApiError(400, f"invalid mode {mode!r}: expected control or watch")
        if seat.terminal is None:
            raise ApiError(409, f"{name}/{student} has no sandbox yet")
    except Exception as exc:
        await websocket.close(code=1008, reason=str(getattr(exc, "message", exc))[:120])
        return
    take_over = role == "teacher" and mode == "control"
    await terminals.serve(websocket, seat.terminal, role, write=mode == "control",
                          take_over=take_over)
