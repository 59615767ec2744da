"""The lifecycle verbs, from any process: run detached, start, stop, restart, kill, wait, remove.

A supervised sandbox is asked through its supervisor's socket while one
runs, and handled on disk when none does (stopped, or its supervisor
died). A sandbox run in the foreground by another process (`sandbox run`
without -d) can be stopped and killed too, through its init (which passes
signals on to the command) and its cgroup; it cannot start again, and its
exit status is its owner's to report.
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import asdict
from typing import Any

from .. import gc, state
from ..cgroups import host_cgroups
from ..entry import find_init
from ..errors import SandboxError, StateError
from ..spec import SandboxSpec
from . import client
from .launch import Launched, create, launch
from .options import SupervisorOptions
from .status import Status, read_status, supervisor_alive


def run_detached(spec: SandboxSpec, options: SupervisorOptions, *,
                 attach: bool = False) -> Launched:
    """Make a supervised sandbox and start it (StartFailed if its command could not start:
    a --rm one is gone then, another stays, stopped, with the error as its status)."""
    return launch(create(spec, options), attach=attach)


def create_detached(spec: SandboxSpec, options: SupervisorOptions) -> str:
    """Make a supervised sandbox without starting it (`start` does): its id."""
    return create(spec, options).id


def describe(ref: str) -> dict[str, Any] | None:
    """The supervised sandbox ``ref`` names, as its status says (``id``, ``state``,
    ``exit_code``, ``message``, ``spec``, ``options``, ``restarts``, times) and ``live``
    (its supervisor runs); None when ``ref`` is a sandbox run in the foreground of its
    process. StateError when there is no such sandbox."""
    sdir, status = supervised(ref)
    if status is None:
        return None
    return {"id": sdir.id, **asdict(status), "live": supervisor_alive(sdir)}


def attach_to(ref: str, *, stdin: bool = True) -> client.Attachment:
    """An attachment to the running supervised sandbox ``ref`` (id or name)."""
    sdir, status = supervised(ref)
    if status is None:
        raise StateError(f"sandbox {sdir.id} runs in the foreground of the process that made "
                         "it: there is nothing to attach to")
    return client.attach(sdir, stdin=stdin)


def supervised(ref: str) -> tuple[state.SandboxDir, Status | None]:
    """The sandbox ``ref`` names and its supervisor status (None: not supervised)."""
    sdir = state.resolve(ref)
    return sdir, read_status(sdir)


def start(ref: str, *, attach: bool = False) -> Launched:
    """Start a stopped (or created) supervised sandbox again: same id, name and layer."""
    sdir, status = supervised(ref)
    if status is None:
        raise StateError(f"sandbox {sdir.id} cannot start again: it runs in the foreground of "
                         "the process that made it", hint="`sandbox run -d` makes sandboxes "
                         "that can be stopped and started")
    if supervisor_alive(sdir):
        raise StateError(f"sandbox {sdir.id} is running already")
    if status.state == "removing":
        raise StateError(f"sandbox {sdir.id} is being removed")
    return launch(sdir, attach=attach)


def stop(ref: str, timeout: float = 10.0) -> int | None:
    """SIGTERM, then SIGKILL after ``timeout`` seconds; the exit status (None: unknown)."""
    sdir, status = supervised(ref)
    if status is not None:
        if not supervisor_alive(sdir):
            return status.exit_code  # stopped already
        return client.request(sdir, "stop", timeout=timeout).get("exit_code")
    record = sdir.read_record()
    if _signal_init(sdir, record, signal.SIGTERM):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and find_init(record.cgroups):
            time.sleep(0.05)
    _kill_cgroup(record)
    return None


def restart(ref: str, timeout: float = 10.0, *, attach: bool = False) -> Launched:
    stop(ref, timeout)
    sdir, _ = supervised(ref)
    deadline = time.monotonic() + 10
    while supervisor_alive(sdir) and time.monotonic() < deadline:
        time.sleep(0.02)  # its supervisor writes the last status, then exits
    return start(ref, attach=attach)


def kill(ref: str, sig: int = signal.SIGKILL) -> None:
    """Send ``sig`` to the command (SIGKILL ends the whole sandbox, and no restart)."""
    sdir, status = supervised(ref)
    if status is not None:
        if not supervisor_alive(sdir):
            raise StateError(f"sandbox {sdir.id} is not running")
        client.request(sdir, "kill", signal=int(sig))
        return
    record = sdir.read_record()
    if sig == signal.SIGKILL:
        if not find_init(record.cgroups):
            raise StateError(f"sandbox {sdir.id} is not running")
        _kill_cgroup(record)
    elif not _signal_init(sdir, record, sig):
        raise StateError(f"sandbox {sdir.id} is not running")


def wait(ref: str) -> int | None:
    """Block until the sandbox has stopped for good (not to restart); its exit status."""
    sdir, status = supervised(ref)
    if status is None:
        raise StateError(f"sandbox {sdir.id} runs in the foreground of the process that made "
                         "it: its exit status goes to that process")
    if supervisor_alive(sdir):
        try:
            return client.request(sdir, "wait").get("exit_code")
        except StateError:
            pass  # it ended as we asked: read its status
    status = read_status(sdir)
    return status.exit_code if status is not None else None


def remove(ref: str, *, force: bool = False) -> str:
    """Remove the sandbox and everything it kept; a running one only with ``force``."""
    sdir, status = supervised(ref)
    if status is None:
        try:
            record = sdir.read_record()
        except StateError:
            record = None
        gc.remove(sdir, record, force=force)
        return sdir.id
    if supervisor_alive(sdir):
        if not force:
            raise StateError(f"sandbox {sdir.id} is running", hint="stop it first, or use "
                             "`sandbox rm -f` to kill it")
        try:
            client.request(sdir, "remove")
            return sdir.id
        except StateError:
            pass  # its supervisor did not answer: removed from here
    gc.reclaim(sdir, status, remove=True)
    return sdir.id


def _signal_init(sdir: state.SandboxDir, record: state.Record, sig: int) -> bool:
    """Send ``sig`` to the sandbox's init, which passes it on to the command; False if none."""
    init = find_init(record.cgroups) if record.cgroups else None
    if init is None:
        return False
    if sdir.removed_by_another():
        raise StateError(f"sandbox {sdir.id} is being removed")
    try:
        os.kill(init[0], sig)
    except ProcessLookupError:
        return False
    return True


def _kill_cgroup(record: state.Record) -> None:
    if record.cgroups:
        try:
            host_cgroups().open(record.cgroups).kill()
        except (SandboxError, OSError):
            pass  # gone with the sandbox meanwhile
