"""Removing sandboxes: one on request (`sandbox rm`), or all orphans (`sandbox gc`).

An orphan is a sandbox whose owner process is gone (it crashed or was
SIGKILLed; its container died with it, by PR_SET_PDEATHSIG). A supervised
sandbox (``sandbox.supervisor``) that is stopped is no orphan: it is kept
until `sandbox rm`; one whose supervisor died has its cgroup and network
released and is kept stopped (or removed, if it was to be at its end). A
kept layer whose sandbox is gone is unmounted. What cannot
vanish by itself is found from its record: the cgroup directories, the
network attachment, the state directory and the name. Cgroup directories
without any record (a crash between mkdir and the record's update) are
removed too, once nothing runs in them. In the image store, the work dirs of
dead processes (a killed import or build) and whatever no tag, build cache
entry or live sandbox needs are removed (``images.remove.sweep``).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

from . import state
from .cgroups import host_cgroups
from .errors import SandboxError, StateError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .supervisor.status import Status

#: A state dir without a readable record is left alone this long (it may be mid-create).
GRACE_SECONDS = 30.0


@dataclass
class GcReport:
    removed: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def remove(sdir: state.SandboxDir, record: state.Record | None, *, force: bool = True) -> None:
    """Kill and remove one sandbox from another process (its owner may be alive)."""
    if record is not None and record.owner_alive and not force:
        raise StateError(f"sandbox {sdir.id} is running (owner pid {record.owner_pid})",
                         hint="use `sandbox rm -f` to kill it")
    if record is not None:
        if record.owner_alive:
            sdir.mark_removed()  # its owner then says why its run ended
        release(record)
        state.release_name(record.name, sdir.id)
    sdir.remove()


def release(record: state.Record) -> None:
    """Kill what runs of a sandbox and release what it held on the host: its cgroup
    (killing it kills the init, and so its pid namespace), its network and its uid range."""
    if record.cgroups:
        cgroup = host_cgroups().open(record.cgroups)
        cgroup.kill()
        cgroup.remove()
    if record.network:
        from .network import detach_record

        detach_record(record)
    if record.userns is not None:
        from .security import subids

        subids.release(record.userns, record.id)


def collect(*, now: float | None = None) -> GcReport:
    """Remove every sandbox whose owner is gone, stray cgroups, and unused cgroup parents."""
    report = GcReport()
    now = now or time.time()
    live_ids = set()
    for sdir, record in state.iter_records():
        if record is not None and record.owner_alive:
            live_ids.add(sdir.id)
            continue
        if _supervised(sdir, report):  # kept, or its supervisor's leftovers reclaimed
            live_ids.add(sdir.id)
            continue
        if record is None and _age(sdir.path, now) < GRACE_SECONDS:
            live_ids.add(sdir.id)
            continue
        try:
            remove(sdir, record)
            report.removed.append(sdir.id)
        except (SandboxError, OSError) as exc:
            report.errors.append(f"{sdir.id}: {exc}")
    _collect_stray_cgroups(live_ids, report)
    _collect_stray_layers(report)
    host_cgroups().remove_parents()  # left by a process killed before its exit: if unused
    _collect_stale_names(report)
    from .security import subids

    subids.collect(report.removed, report.errors)
    try:
        from .network import collect as collect_network

        collect_network(report)
    except ImportError:
        pass
    _collect_images(report)
    return report


def _collect_images(report: GcReport) -> None:
    """Work dirs of killed imports and builds, and what no tag, cache entry or sandbox needs."""
    from .images.remove import sweep
    from .units import format_size

    swept = sweep(wait=False)
    if swept.work_dirs or swept.blobs or swept.layers:
        report.removed.append(f"images: {swept.work_dirs} work dirs, {swept.blobs} blobs, "
                              f"{swept.layers} layers ({format_size(swept.freed)})")
    report.errors += swept.errors


def _supervised(sdir: state.SandboxDir, report: GcReport) -> bool:
    """True for a supervised sandbox that stays (its supervisor runs, or it is stopped:
    kept until `sandbox rm`); one whose supervisor died is reclaimed first (its cgroup
    and network released, kept stopped, or removed if it was to be)."""
    from .supervisor.status import read_status, supervisor_alive

    try:
        status = read_status(sdir)
    except StateError:
        return False
    if status is None or supervisor_alive(sdir):
        return status is not None
    if not status.live:
        return True
    try:
        reclaim(sdir, status, remove=False)
        report.removed.append(f"{sdir.id} (its supervisor died)")
    except (SandboxError, OSError) as exc:
        report.errors.append(f"{sdir.id}: {exc}")
    return sdir.path.exists()


def reclaim(sdir: state.SandboxDir, status: Status, *, remove: bool) -> None:
    """What a supervised sandbox whose supervisor is gone left on the host: its cgroup and
    network released; the sandbox removed (``remove``, a --rm one, or one being removed),
    or else kept, stopped, its status saying why."""
    from .supervisor import layer
    from .supervisor.status import write_status

    try:
        record = sdir.read_record()
    except StateError:
        record = None
    if record is not None:
        release(record)
    if remove or status.state == "removing" or status.options.get("auto_remove"):
        layer.remove(sdir.id)
        state.release_name(status.spec.get("name"), sdir.id)
        sdir.remove()
        return
    if status.live:
        status.state, status.exit_code = "exited", 137
        status.message = "its supervisor died (the sandbox was killed with it)"
        status.finished_at = time.time()
        write_status(sdir, status)


def _collect_stray_layers(report: GcReport) -> None:
    """Kept layers (host tmpfs mounts) whose sandbox is gone."""
    from .supervisor import layer

    for sandbox_id in layer.leftovers():
        try:
            layer.remove(sandbox_id)
            report.removed.append(f"layer {sandbox_id}")
        except OSError as exc:
            report.errors.append(f"layer {sandbox_id}: {exc}")


def _collect_stray_cgroups(live_ids: set[str], report: GcReport) -> None:
    hierarchy = host_cgroups()
    known = {os.path.basename(p) for p in hierarchy.leftovers()}
    existing = set(state.list_ids())
    for sandbox_id in sorted(known - live_ids - existing):
        paths = [p for p in hierarchy.leftovers() if os.path.basename(p) == sandbox_id]
        try:
            cgroup = hierarchy.open(paths)
            cgroup.kill()
            cgroup.remove()
            report.removed.append(f"cgroup {sandbox_id}")
        except (SandboxError, OSError) as exc:
            report.errors.append(f"cgroup {sandbox_id}: {exc}")


def _collect_stale_names(report: GcReport) -> None:
    names = state.names_dir()
    if not names.is_dir():
        return
    for name in os.listdir(names):
        link = names / name
        if not (state.sandboxes_dir() / os.readlink(link)).exists():
            os.unlink(link)


def _age(path: os.PathLike, now: float) -> float:
    try:
        return now - os.stat(path).st_mtime
    except FileNotFoundError:
        return float("inf")
