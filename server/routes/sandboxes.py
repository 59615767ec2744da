"""/v1/sandboxes: create, start, wait, kill, stop, remove, list, inspect, stats.

The sandboxes the daemon made are held in its process (``server.held``);
an admin also sees every other sandbox of the host (as `sandbox ps` does)
and may remove it. A token sees only the sandboxes it made. The logs and
the attach WebSocket are in ``sandbox_logs``.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from sandbox import (
    DEFAULT_CAPABILITIES,
    StateError,
    capabilities_from,
    host_caps,
    kill_sandbox,
    remove_sandbox,
    restart_sandbox,
    sandbox_log,
    sandbox_rows,
    start_sandbox,
    stop_sandbox,
    wait_sandbox,
)

from .. import detached
from ..deps import Caller, EngineDep, Reader, Runner
from ..engine import Engine
from ..errors import ApiError
from ..held import Held
from ..models import (
    ERRORS,
    Removed,
    SandboxCreate,
    SandboxCreated,
    SandboxDetail,
    SandboxSummary,
    WaitResponse,
)
from ..signals import parse_signal
from ..streams import CREATED_FRAME, ENDED_FRAME, MULTIPLEXED, frame, json_frame

router = APIRouter(prefix="/sandboxes", tags=["sandboxes"], responses=ERRORS)
DETACH = ("hand it to a supervisor of its own, as `sandbox run -d` does: it outlives the "
          "daemon, stops and starts again (see the README's 'The daemon')")
FOREGROUND = ("with detach: its first attach (with start=true) is the terminal that runs it "
              "(`sandbox run -it`): gone without a detach, the command gets a hangup")
FOLLOW = ("with start=true: answer with its output as it comes, Docker's multiplexed frames "
          "between a frame of type 3 (what was made, JSON) and one of type 4 (how it ended, "
          "as /wait answers): `sandbox run` in one request")


def no_such(ref: str) -> StateError:
    return StateError(f"no such sandbox: {ref}", hint="`sandbox ps` lists live sandboxes")


def find(engine: Engine, caller: Caller, ref: str) -> Held | None:
    """The held sandbox ``ref`` names, if the caller may see it; None: another of the host's,
    which the engine's verbs act on: a detached one (``server.detached``) the caller made, or
    any (admins only; others get 404, as for a sandbox that does not exist)."""
    held = engine.sandboxes.find(ref)
    if held is not None:
        if not caller.sees(held.owner):
            raise no_such(ref)
        return held
    if caller.admin:
        return None
    is_detached, owner = detached.owner_of(ref)
    if not is_detached or not caller.sees(owner):
        raise no_such(ref)
    return None


def held_or_409(engine: Engine, caller: Caller, ref: str) -> Held:
    """The held sandbox ``ref`` names; 404 when no sandbox of the host has that name, 409 when
    one has but the daemon did not make it (an admin's view of the host's others)."""
    held = find(engine, caller, ref)
    if held is None:
        sandbox_log(ref)  # StateError "no such sandbox" (404) when the host has none either
        raise StateError(f"sandbox {ref} was not made by this daemon: it can only be removed here",
                         hint="`sandbox rm -f` it")
    return held


def check_rights(caller: Caller, body: SandboxCreate) -> None:
    """403 for what only some tokens may ask: host paths (mounts, a seccomp profile file) need
    ``mount-host``; what weakens the walls around a sandbox (the host's network, ports of the
    host, no seccomp filter, the host's user namespace where the daemon's default is its own,
    capabilities beyond the default set) needs ``admin``."""
    if body.mounts and not caller.allows("mount-host"):
        raise ApiError(403, f"token {caller.name!r} may not mount host paths: that needs the "
                       "scope 'mount-host'", field="mounts")
    if body.seccomp.startswith("/") and not caller.allows("mount-host"):
        raise ApiError(403, f"token {caller.name!r} may not name a profile file of the daemon's "
                       "host: that needs the scope 'mount-host'", field="seccomp")
    asked = [] if caller.admin else _admin_only(body)
    if asked:
        field, why = asked[0]
        raise ApiError(403, f"token {caller.name!r} may not {why}: that needs an admin token",
                       field=field)


def _admin_only(body: SandboxCreate) -> list[tuple[str, str]]:
    """(field, what it asks) for each part of the request only an admin token may ask."""
    network = body.network
    mode = network if isinstance(network, str) else (network.mode if network else None)
    asked = []
    if mode == "host":
        asked.append(("network", "use the host's network"))
    if network is not None and not isinstance(network, str) and network.allow_host_ports:
        asked.append(("network", "connect to ports of the host (allow_host_ports)"))
    if body.seccomp == "unconfined":
        asked.append(("seccomp", "run without a seccomp filter"))
    if body.seccomp == "nested":
        asked.append(("seccomp", "make user namespaces (the nested profile)"))
    if body.userns == "host" and os.environ.get("SANDBOX_USERNS") == "auto":
        asked.append(("userns", "run in the host's user namespace"))
    caps = body.capabilities if body.capabilities is not None else (
        capabilities_from(body.cap_add, body.cap_drop) or ())
    extra = {str(c).upper().removeprefix("CAP_") for c in caps} - set(DEFAULT_CAPABILITIES)
    if extra:
        asked.append(("cap_add", f"add the capabilities {', '.join(sorted(extra))}"))
    return asked


@router.post("", status_code=201, response_model=SandboxCreated,
             responses={201: {"content": {MULTIPLEXED: {}}}})
async def create(body: SandboxCreate, caller: Runner, engine: EngineDep,
                 start: bool = False, remove: bool = False, stdin: bool = False,
                 follow: Annotated[bool, Query(description=FOLLOW)] = False,
                 detach: Annotated[bool, Query(description=DETACH)] = False,
                 restart: Annotated[str, Query(description="with detach: no, always or "
                                               "on-failure[:N]")] = "no",
                 foreground: Annotated[bool, Query(description=FOREGROUND)] = False,
                 log_stdin: Annotated[bool, Query(description="with detach: keep what is "
                                                  "typed in its log too")] = False,
                 rows: Annotated[int | None, Query(ge=1, le=1000)] = None,
                 cols: Annotated[int | None, Query(ge=1, le=1000)] = None) -> Any:
    """Make a sandbox from a spec; with ``start`` start it too; with ``remove`` forget it once
    it has ended and been waited for (`sandbox run` without -d; with ``detach``: remove it at
    its end, `--rm`). ``stdin``: its stdin is a pipe the attach WebSocket writes to.
    ``rows``/``cols``: the size of its terminal at start (``tty``). ``follow``: the answer
    streams its output and how it ended (see FOLLOW)."""
    if follow and (not start or detach or stdin or body.tty):
        raise ApiError(400, "follow streams a started sandbox's output to its end: it needs "
                       "start=true, and takes neither detach, stdin nor tty", field="follow")
    check_rights(caller, body)
    spec = body.to_spec()
    if detach:
        opts = detached.options(owner=caller.name, remove=remove, restart=restart,
                                foreground=foreground, log_stdin=log_stdin, rows=rows, cols=cols)
        spec = spec.with_changes(interactive=stdin)  # as `sandbox run -d`/`-t`: -i says
        sandbox_id, status = await run_in_threadpool(detached.create, spec, opts, start=start)
        return {"id": sandbox_id, "name": spec.name, "status": status,
                "warnings": list(host_caps(spec.limits))}

    def make() -> Held:
        held = engine.sandboxes.create(spec, caller.name, stdin=stdin, auto_remove=remove)
        if start:
            engine.sandboxes.start(held)
        return held

    held = await run_in_threadpool(make)
    created = {"id": held.id, "name": spec.name, "status": held.status,
               "warnings": list(host_caps(spec.limits))}
    if follow:
        return StreamingResponse(_followed(held, engine, created, remove), status_code=201,
                                 media_type=MULTIPLEXED)
    return created


async def _followed(held: Held, engine: Engine, created: dict[str, Any],
                    remove: bool) -> AsyncIterator[bytes]:
    """A started sandbox's run as one answer: what was made, its output, how it ended."""
    yield json_frame(CREATED_FRAME, created)
    async for _index, record in held.logs.follow(0):
        if record.stream in ("stdout", "stderr"):
            yield frame(record)
    await held.wait_ended()
    if remove:
        engine.sandboxes.drop(held)
    yield json_frame(ENDED_FRAME, ended(held))


@router.get("", response_model=list[SandboxSummary])
async def list_sandboxes(caller: Reader, engine: EngineDep, all: bool = False) -> list[dict[str, Any]]:
    """The live sandboxes (with ``all``: also exited ones kept here, and orphans of the host):
    the caller's own (held or detached), or every one of the host for an admin."""
    held = {h.id: h for h in engine.sandboxes.all() if caller.sees(h.owner)}
    rows = []
    for row in await run_in_threadpool(sandbox_rows, include_orphans=all):
        mine = held.pop(row["id"], None)
        if mine is not None and mine.status != "running":
            rows.append(mine.row())
        elif mine is not None:
            rows.append({**row, "owner": mine.owner})
        elif caller.admin or (row.get("owner") is not None and caller.sees(row["owner"])):
            rows.append(row)
    rows += [h.row() for h in held.values() if all or h.status != "exited"]
    return sorted(rows, key=lambda r: r["id"])


@router.get("/{ref}", response_model=SandboxDetail)
async def inspect(ref: str, caller: Reader, engine: EngineDep) -> dict[str, Any]:
    """Its row, spec and state; a detached one's restart policy and runs; its execs."""
    held = find(engine, caller, ref)
    if held is not None:
        detail = {**held.row(), "spec": held.spec.to_dict(), "error": held.error,
                  "terminal": takes_input(held)}
        if held.result is not None:
            detail.update(exit_code=held.result.exit_code, result=held.result.to_dict())
    elif detached.owner_of(ref)[0]:
        detail = await run_in_threadpool(detached.detail, ref)
    else:
        rows = await run_in_threadpool(sandbox_rows, include_orphans=True)
        row = next((r for r in rows if r["id"] == ref or r["name"] == ref
                    or r["id"].startswith(ref)), None)
        if row is None:
            raise no_such(ref)
        detail = row
    return {**detail, "execs": engine.execs.of(detail["id"])}


@router.post("/{ref}/start", status_code=204)
async def start(ref: str, caller: Runner, engine: EngineDep) -> Response:
    """Start it: a created one, or a stopped detached one again (same id, name, layer, log)."""
    held = find(engine, caller, ref)
    if held is None:
        await run_in_threadpool(lambda: start_sandbox(ref))
    else:
        await run_in_threadpool(engine.sandboxes.start, held)
    return Response(status_code=204)


@router.post("/{ref}/wait", response_model=WaitResponse)
async def wait(ref: str, caller: Reader, engine: EngineDep, remove: bool = False) -> dict[str, Any]:
    """Block until the sandbox has ended (a detached one: for good, not to restart); how it
    ended. ``remove``: forget it then (a held one)."""
    held = find(engine, caller, ref)
    if held is None:
        code = await run_in_threadpool(wait_sandbox, ref)
        return detached.ended(ref, code)
    await held.wait_ended()
    if remove and caller.allows("run"):
        engine.sandboxes.drop(held)
    return ended(held)


def takes_input(held: Held) -> str | None:
    """How the sandbox takes input: ``pty``, ``pipe`` (its stdin), or None."""
    if getattr(held.spec, "tty", False):
        return "pty"
    return "pipe" if held.stdin_w is not None else None


def ended(held: Held) -> dict[str, Any]:
    result = held.result
    if result is None:
        return {"id": held.id, "exit_code": 125, "result": None, "message": None,
                "summary": None, "error": held.error or "the sandbox ended without a result"}
    return {"id": held.id, "exit_code": result.exit_code, "result": result.to_dict(),
            "message": result.limit_message(), "summary": result.summary(), "error": held.error}


@router.post("/{ref}/kill", status_code=204)
async def kill(ref: str, caller: Runner, engine: EngineDep, signal: str = "SIGKILL") -> Response:
    """Send a signal to the command (SIGKILL, the default, ends the whole sandbox)."""
    sig = parse_signal(signal)
    held = find(engine, caller, ref)
    if not 0 < sig < 65:
        raise ApiError(400, f"invalid signal {signal!r}: expected 1 to 64", field="signal")
    if held is None:
        await run_in_threadpool(kill_sandbox, ref, sig)
    else:
        await run_in_threadpool(engine.sandboxes.kill, held, sig)
    return Response(status_code=204)


Seconds = Annotated[float, Query(ge=0, le=3600, description="seconds between SIGTERM and SIGKILL")]
DockerSeconds = Annotated[float | None, Query(ge=0, le=3600, description="Docker's name for timeout")]


@router.post("/{ref}/stop", status_code=204)
async def stop(ref: str, caller: Runner, engine: EngineDep, timeout: Seconds = 10,
               t: DockerSeconds = None) -> Response:
    """SIGTERM, then SIGKILL after ``timeout`` (or ``t``) seconds; returns once it has ended
    (a detached one is kept, stopped, until removed)."""
    held = find(engine, caller, ref)
    grace = timeout if t is None else t
    if held is None:
        await run_in_threadpool(stop_sandbox, ref, grace)
    else:
        await run_in_threadpool(engine.sandboxes.stop, held, grace)
    return Response(status_code=204)


@router.post("/{ref}/restart", status_code=204)
async def restart(ref: str, caller: Runner, engine: EngineDep, timeout: Seconds = 10,
                  t: DockerSeconds = None) -> Response:
    """Stop it as ``stop`` does, then start it again (detached sandboxes only)."""
    held = find(engine, caller, ref)
    if held is not None:
        raise StateError(f"sandbox {held.id} cannot start again: it runs in the foreground of "
                         "the request that made it", hint="`sandbox run -d` makes sandboxes "
                         "that can be stopped and started")
    grace = timeout if t is None else t
    await run_in_threadpool(lambda: restart_sandbox(ref, grace))
    return Response(status_code=204)


@router.delete("/{ref}", response_model=Removed)
async def delete(ref: str, caller: Runner, engine: EngineDep, force: bool = False) -> dict[str, str]:
    """Remove it (`sandbox rm`): refused while it runs, unless ``force`` (which kills it)."""
    held = find(engine, caller, ref)
    if held is None:
        return {"id": await run_in_threadpool(lambda: remove_sandbox(ref, force=force))}
    if held.status == "exited":  # torn down already: forgetting it blocks nothing
        return {"id": engine.sandboxes.remove(held, force=force)}
    return {"id": await run_in_threadpool(lambda: engine.sandboxes.remove(held, force=force))}


@router.get("/{ref}/stats")
async def stats(ref: str, caller: Reader, engine: EngineDep) -> dict[str, Any]:
    """Usage now (running: read from its cgroup) or at its end (exited: from its Result)."""
    held = held_or_409(engine, caller, ref)
    if held.status == "running" and held.sandbox.cgroup is not None:
        usage = dataclasses.asdict(await run_in_threadpool(held.sandbox.cgroup.stats))
        return {"id": held.id, "status": held.status, **usage}
    result = held.result
    keys = ("peak_memory", "cpu_user", "cpu_system", "cpu_time", "pids_peak", "oom_killed")
    values = {k: getattr(result, k) for k in keys} if result else dict.fromkeys(keys)
    return {"id": held.id, "status": held.status, **values}
