"""What exists on this host, as plain data: sandboxes, images, networks.

The CLI's listing verbs (`sandbox ps`, `images`, `image inspect`, `rmi`,
`network ls|create|rm`, `rm`) and the daemon's API read and change the host
through these functions, and both print or send the same dicts: so a verb
prints the same whether it runs here or asks a daemon (which calls these
on its host). Every value is JSON-able.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import state
from .errors import SandboxError

if TYPE_CHECKING:
    from .supervisor.status import Status


def sandbox_rows(*, include_orphans: bool = False) -> list[dict[str, Any]]:
    """The sandboxes on this host (`sandbox ps`): id, name, image, status, created, command.

    ``status`` is ``running`` while the sandbox's owner lives (a supervised one's
    supervisor: ``running``, ``restarting`` or ``removing``); with
    ``include_orphans`` also the stopped ones (``exited (N) ...``, their
    ``exit_code`` set), ``created`` ones never started, ``dead`` ones whose
    supervisor died, and ``orphaned`` what a crash left to `sandbox gc`.
    """
    from .supervisor.status import read_status

    rows = []
    for sdir, record in state.iter_records():
        try:
            status = read_status(sdir)
        except SandboxError:
            continue
        if status is not None:
            row = _supervised_row(sdir, status)
        elif record is not None:
            row = {"id": record.id, "name": record.name, "image": record.image,
                   "status": "running" if record.owner_alive else "orphaned",
                   "created": record.created, "command": list(record.command),
                   "owner_pid": record.owner_pid, "live": record.owner_alive}
        else:
            continue
        if row.pop("live") or include_orphans:
            rows.append(row)
    return rows


def _supervised_row(sdir: state.SandboxDir, status: Status) -> dict[str, Any]:
    """A supervised sandbox's row; ``live``: whether it counts as running."""
    from .supervisor.status import supervisor_alive

    alive = supervisor_alive(sdir)
    spec = status.spec
    live = alive and status.state in ("running", "restarting", "removing")
    if live:
        what = status.state
    elif status.state == "created":
        what = "created"
    elif status.live:  # its supervisor died: `sandbox gc` says so in its status
        what = "dead"
    else:
        what = f"exited ({status.exit_code})"
    return {"id": sdir.id, "name": spec.get("name"), "image": spec.get("image", "?"),
            "status": what, "created": status.created, "command": list(spec.get("command") or ()),
            "owner_pid": None, "exit_code": None if live else status.exit_code,
            "finished": status.finished_at, "owner": status.options.get("owner"), "live": live}


def remove_sandbox(ref: str, *, force: bool = False) -> str:
    """Kill (with ``force``) and remove the sandbox ``ref`` names (`sandbox rm`); its id.

    A supervised sandbox's writable layer, log and name go too. StateError
    when there is no such sandbox, or it runs and ``force`` is false.
    """
    from .supervisor.lifecycle import remove

    return remove(ref, force=force)


def sandbox_log(ref: str) -> tuple[str, Path, Callable[[], bool]]:
    """(id, log file, still running?) of the sandbox ``ref`` names (`sandbox logs`)."""
    sdir = state.resolve(ref)

    def running() -> bool:
        try:
            return sdir.read_record().owner_alive
        except Exception:
            return False

    return sdir.id, sdir.log_path, running


def image_rows() -> list[dict[str, Any]]:
    """One row per tag (`sandbox images`): name, tag, id, size (bytes), created, note.

    The built-in images come last when they are not stored: busybox (made on
    first use) and host (a view of this host).
    """
    from .images import list_images
    from .images.layers import unpacked_size

    rows: list[dict[str, Any]] = []
    for image in list_images():
        size = sum(unpacked_size(layer.diff_id) for layer in image.layers)
        for ref in image.tags:
            name, _, tag = ref.partition("@") if "@" in ref else ref.rpartition(":")
            tag = "<none>" if "@" in ref else tag  # pulled by digest: the ID column says which
            rows.append({"name": name, "tag": tag, "id": image.id, "size": size,
                         "created": image.created or 0, "note": None})
    if not any(r["name"] == "busybox" for r in rows):
        rows.append({"name": "busybox", "tag": "latest", "id": None, "size": None,
                     "created": None, "note": "made on first use"})
    rows.append({"name": "host", "tag": None, "id": None, "size": None, "created": None,
                 "note": "a view of this host"})
    return rows


def inspect_image(ref: str) -> dict[str, Any]:
    """An image's config, layers and history (`sandbox image inspect`); ImageNotFound if none."""
    from .images import lookup

    image = lookup(ref)
    return {"Id": image.id, "RepoTags": list(image.tags), "Created": image.config.created,
            "Architecture": image.config.architecture, "Os": image.config.os,
            "Base": image.base or ("scratch" if not image.layers else None),
            "Config": image.config.config.to_json(),
            "RootFS": {"Type": "layers", "Layers": list(image.config.diff_ids)},
            "Layers": [d.to_json() for d in image.manifest.layers],
            "History": list(image.config.history)}


def remove_image(ref: str, *, force: bool = False) -> dict[str, Any]:
    """Untag ``ref`` (`sandbox rmi`): the image's id and the bytes freed."""
    from .images import remove_image as remove

    image, report = remove(ref, force=force)
    return {"ref": ref, "id": image.id, "freed": report.freed}


def network_rows() -> list[dict[str, Any]]:
    """The named networks (`sandbox network ls`): name, bridge, subnet, isolated, members."""
    from .network import ipam, registry

    return [{"name": n.name, "bridge": n.bridge, "subnet": n.subnet, "isolated": n.isolated,
             "members": len(ipam.members(n))} for n in registry.list_networks()]


def create_network(name: str, subnet: str | None = None, *,
                   temporary: bool = False, isolated: bool = False) -> dict[str, Any]:
    """Make a named network and its bridge (`sandbox network create`); ``temporary``: it
    belongs to this process, and `sandbox gc` removes it once the process is gone (a
    job's private network); ``isolated``: its members reach the gateway, never each
    other (a class's network)."""
    from .network import registry

    network = registry.create(name, subnet, temporary=temporary, isolated=isolated)
    return {"name": network.name, "bridge": network.bridge, "subnet": network.subnet,
            "isolated": network.isolated}


def remove_network(name: str) -> dict[str, Any]:
    """Remove a network (`sandbox network rm`); refused while it has members."""
    from .network import registry
    from .network.model import DEFAULT

    network = registry.remove(name)
    return {"name": name, "bridge": network.bridge, "default": name == DEFAULT}

