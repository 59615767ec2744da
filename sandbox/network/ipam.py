"""Address leases and the members' /etc/hosts, per network.

A lease is a file ``run_dir()/networks/NAME/leases/ADDRESS`` holding the
sandbox id and its alias; all changes happen under the network's flock, so
allocation is safe across threads and processes. Addresses are handed out
round-robin from a cursor, so a freed address is reused as late as possible
(its old veth may take the kernel a few milliseconds to remove).

The members' names live in one file per network, ``.../NAME/hosts``, that
every member sees read-only as its /etc/hosts (a bind mount of the same
inode); it is rewritten in place whenever a member comes or goes, so
members see each other without any process touching their mounts.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from .. import state
from ..errors import NetworkError
from .locks import locked
from .model import Network

HOSTS_HEADER = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"


@dataclass(frozen=True)
class Lease:
    """One member: its address, its sandbox and the name others reach it by."""

    address: str
    sandbox_id: str
    alias: str | None


def network_run_dir(network: Network) -> Path:
    return state.run_dir() / "networks" / network.name


def hosts_path(network: Network) -> Path:
    return network_run_dir(network) / "hosts"


def _leases_dir(network: Network) -> Path:
    return network_run_dir(network) / "leases"


@contextmanager
def lease_lock(network: Network) -> Iterator[None]:
    """The network's lock: every lease and hosts change happens under it."""
    _leases_dir(network).mkdir(parents=True, exist_ok=True)
    with locked(network_run_dir(network) / "lock"):
        yield


def allocate(network: Network, sandbox_id: str, alias: str | None) -> str:
    """Lease the next free address to ``sandbox_id``; rewrite the hosts file."""
    with lease_lock(network):
        leases = _read_leases(network)
        if alias and any(lease.alias == alias for lease in leases):
            raise NetworkError(f"name {alias!r} is already taken on network {network.name!r}",
                               hint="choose another --name")
        address = _next_free(network, {lease.address for lease in leases})
        _write_json(_leases_dir(network) / address, {"id": sandbox_id, "alias": alias})
        _write_hosts(network, [*leases, Lease(address, sandbox_id, alias)])
    return address


def release(network: Network, address: str, sandbox_id: str) -> None:
    """Give ``address`` back, only if ``sandbox_id`` still holds it."""
    with lease_lock(network):
        leases = _read_leases(network)
        if not any(lease.address == address and lease.sandbox_id == sandbox_id for lease in leases):
            return
        (_leases_dir(network) / address).unlink(missing_ok=True)
        _write_hosts(network, [lease for lease in leases if lease.address != address])


def members(network: Network) -> list[Lease]:
    """Every lease (without the lock: for listing)."""
    return _read_leases(network)


def live_members(network: Network) -> list[Lease]:
    """Leases whose sandbox still exists; the others are dropped (call under the lock)."""
    leases = _read_leases(network)
    live = [lease for lease in leases if (state.sandboxes_dir() / lease.sandbox_id).exists()]
    if len(live) != len(leases):
        for lease in leases:
            if lease not in live:
                (_leases_dir(network) / lease.address).unlink(missing_ok=True)
        _write_hosts(network, live)
    return live


def prune(network: Network) -> list[Lease]:
    """Drop the leases of sandboxes that no longer exist; return them (for gc)."""
    with lease_lock(network):
        before = _read_leases(network)
        live = live_members(network)
    return [lease for lease in before if lease not in live]


def forget(network: Network) -> None:
    """Remove the network's run-time directory (no members left)."""
    shutil.rmtree(network_run_dir(network), ignore_errors=True)


def _next_free(network: Network, taken: set[str]) -> str:
    cursor_path = network_run_dir(network) / "cursor"
    try:
        cursor = int(cursor_path.read_text())
    except (FileNotFoundError, ValueError):
        cursor = 0
    for step in range(network.size):
        address = network.address(cursor + step)
        if address not in taken:
            cursor_path.write_text(str(network.index(address) + 1))
            return address
    raise NetworkError(f"network {network.name!r} has no free address left "
                       f"({network.size} in {network.subnet})",
                       hint="stop some sandboxes, or run `sandbox gc`")


def _read_leases(network: Network) -> list[Lease]:
    leases = []
    try:
        names = os.listdir(_leases_dir(network))
    except FileNotFoundError:
        return []
    for address in sorted(n for n in names if not n.startswith(".")):
        try:
            data = json.loads((_leases_dir(network) / address).read_text())
        except (FileNotFoundError, ValueError):
            continue
        leases.append(Lease(address, data["id"], data.get("alias")))
    return leases


def render_hosts(leases: list[Lease]) -> str:
    """/etc/hosts for the members: localhost, then one line per named member."""
    lines = [f"{lease.address}\t{lease.alias}\n" for lease in leases if lease.alias]
    return HOSTS_HEADER + "".join(lines)


def _write_hosts(network: Network, leases: list[Lease]) -> None:
    """Rewrite the hosts file in place: members have this very inode mounted."""
    data = render_hosts(leases).encode()
    fd = os.open(hosts_path(network), os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        os.pwrite(fd, data, 0)
        os.ftruncate(fd, len(data))
    finally:
        os.close(fd)


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)
