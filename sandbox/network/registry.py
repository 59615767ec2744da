"""Network definitions: which networks exist, their bridges and subnets.

A definition is a small JSON file under ``lib_dir()/networks`` (networks
outlive processes and reboots; their bridges are made again on first use
after a reboot). The default network ``bridge`` is defined on first use,
with its bridge name and subnet from SANDBOX_BRIDGE / SANDBOX_BRIDGE_SUBNET
or, by default, ``sbx0`` and the first /16 of 10.200-10.219 that clashes
with no host route and no other network.

Choosing a subnet and making its bridge happen under one host-wide lock, so
two processes (or two installations) never pick overlapping subnets: a
bridge's route is what the next chooser sees.
"""

from __future__ import annotations

import ipaddress
import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .. import state
from ..errors import NetworkError
from ..spec import _NAME_RE
from . import bridge, firewall, ipam
from .locks import locked
from .model import DEFAULT, RESERVED, Network, bridge_name, parse_subnet

#: Host-wide: subnets are a host-wide resource, whatever the state directory.
HOST_LOCK = Path("/run/lock/sandbox-networks.lock")
DEFAULT_BRIDGE = "sbx0"
DEFAULT_POOL = [f"10.{n}.0.0/16" for n in range(200, 220)]
NAMED_POOL = [f"10.{a}.{b}.0/24" for a in range(220, 224) for b in range(256)]


def networks_dir() -> Path:
    return state.lib_dir() / "networks"


def _path(name: str) -> Path:
    return networks_dir() / f"{name}.json"


def get(name: str, *, define: bool = True) -> Network:
    """The network of that name (the default one is defined on first use; with
    ``define=False`` it is only worked out, for a dry run: nothing is made)."""
    if not isinstance(name, str) or not _NAME_RE.match(name):  # a name, never a path
        raise NetworkError(f"invalid network name {name!r}: expected letters, digits, '_', '.', '-'")
    try:
        return _read(name)
    except FileNotFoundError:
        pass
    if name == DEFAULT:
        return _define_default() if define else _default()
    known = ", ".join(n.name for n in list_networks()) or "none yet"
    raise NetworkError(f"no such network: {name!r} (networks: none, host, bridge; defined: {known})",
                       hint=f"create it with `sandbox network create {name}`")


def list_networks() -> list[Network]:
    """Every defined network, the default one included once it has been used."""
    try:
        names = sorted(p.stem for p in networks_dir().glob("*.json"))
    except FileNotFoundError:
        return []
    return [_read(n) for n in names]


def create(name: str, subnet: str | None = None, *, temporary: bool = False,
           isolated: bool = False) -> Network:
    """Define a named network and make its bridge; refuse taken names and overlaps.

    ``temporary``: the network belongs to this process (a job's private
    network): its definition names the process, and `sandbox gc` removes the
    network once that process is gone and no sandbox uses it. ``isolated``:
    its members reach the gateway but not each other (``Network.isolated``).
    """
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise NetworkError(f"invalid network name {name!r}: expected letters, digits, "
                           "'_', '.', '-' (at most 63)")
    if name in RESERVED:
        raise NetworkError(f"network name {name!r} is taken by a built-in mode",
                           hint="choose another name")
    wanted = parse_subnet(subnet) if subnet is not None else None
    with _host_lock():
        if _path(name).exists():
            raise NetworkError(f"network {name!r} already exists", hint="`sandbox network ls` lists them")
        if wanted is not None:
            _check_free(wanted)
        chosen = str(wanted) if wanted else _choose(NAMED_POOL)
        network = Network(name, bridge_name(name, str(state.lib_dir())), chosen, isolated)
        return _make(network, owner=_this_process() if temporary else None)


def remove(name: str) -> Network:
    """Remove a network (its bridge, rules and definition); refused while it has members."""
    network = _read_or_fail(name)
    with ipam.lease_lock(network):
        members = ipam.live_members(network)
        if members:
            listing = ", ".join(m.alias or m.sandbox_id for m in members)
            raise NetworkError(f"network {name!r} has {len(members)} member(s): {listing}",
                               hint="stop them first with `sandbox rm -f`")
        ports = _bridge_ports(network.bridge)
        if ports:  # members of another state directory, on the same host-wide bridge
            raise NetworkError(f"network {name!r} is in use: {len(ports)} link(s) on its bridge "
                               f"{network.bridge} ({', '.join(ports)})",
                               hint="stop the sandboxes that use it first")
        bridge.delete(network)
        ipam.forget(network)
        _path(name).unlink(missing_ok=True)
    return network


def _bridge_ports(bridge_name: str, settle: float = 2.0) -> list[str]:
    """The links on a bridge that stay there for ``settle`` seconds: the kernel deletes a
    dead sandbox's veth a little after its namespace, so a just-ended member's may linger."""
    deadline = time.monotonic() + settle
    while True:
        try:
            ports = sorted(os.listdir(f"/sys/class/net/{bridge_name}/brif"))
        except FileNotFoundError:
            return []
        if not ports or time.monotonic() > deadline:
            return ports
        time.sleep(0.02)


def ensure(network: Network) -> None:
    """Make the network's bridge again if it is missing (after a reboot); bring the
    firewall of one an older version made up to date."""
    if bridge.exists(network):
        firewall.ensure_current(network)
        return
    with _host_lock():
        if not bridge.exists(network):
            _check_free(network.net, ignore=network.name)
            bridge.create(network)


def _define_default() -> Network:
    with _host_lock():
        try:
            return _read(DEFAULT)
        except FileNotFoundError:
            pass
        subnet = os.environ.get("SANDBOX_BRIDGE_SUBNET")
        if subnet:
            _check_free(parse_subnet(subnet))
        return _make(_default())


def _default() -> Network:
    """The default network as it would be defined now."""
    subnet = os.environ.get("SANDBOX_BRIDGE_SUBNET")
    return Network(DEFAULT, os.environ.get("SANDBOX_BRIDGE", DEFAULT_BRIDGE),
                   subnet or _choose(DEFAULT_POOL))


def _make(network: Network, owner: dict[str, Any] | None = None) -> Network:
    """Write the definition, then make the bridge (both under the host lock).

    The definition comes first, so that a crash in between leaves a
    definition gc can see (and a temporary network's owner), never a bridge
    nothing names; a bridge that cannot be made takes its definition back.
    """
    if bridge.exists(network):
        raise NetworkError(f"a link named {network.bridge!r} already exists on this host",
                           hint="set SANDBOX_BRIDGE to another name, or remove that link")
    networks_dir().mkdir(parents=True, exist_ok=True)
    tmp = networks_dir() / f".{network.name}.tmp"
    definition = {"name": network.name, "bridge": network.bridge, "subnet": network.subnet,
                  "isolated": network.isolated, "created": time.time(),
                  **({"owner": owner} if owner else {})}
    tmp.write_text(json.dumps(definition))
    os.replace(tmp, _path(network.name))
    try:
        bridge.create(network)
    except BaseException:
        _path(network.name).unlink(missing_ok=True)
        raise
    return network


def _this_process() -> dict[str, Any]:
    return {"pid": os.getpid(), "start": state.own_start_time()}


def owner_gone(name: str) -> bool:
    """True for a temporary network whose owner process is dead (False for any other)."""
    try:
        owner = json.loads(_path(name).read_text()).get("owner")
    except (FileNotFoundError, ValueError):
        return False
    return bool(owner) and not state.process_alive(owner.get("pid"), owner.get("start"))


def is_temporary(name: str) -> bool:
    """True for a network some process made for itself (``create(temporary=True)``)."""
    try:
        return bool(json.loads(_path(name).read_text()).get("owner"))
    except (FileNotFoundError, ValueError):
        return False


def _read(name: str) -> Network:
    data = json.loads(_path(name).read_text())
    return Network(data["name"], data["bridge"], data["subnet"], bool(data.get("isolated")))


def _read_or_fail(name: str) -> Network:
    if not isinstance(name, str) or not _NAME_RE.match(name):  # a name, never a path
        raise NetworkError(f"no such network: {name!r}", hint="`sandbox network ls` lists them")
    try:
        return _read(name)
    except FileNotFoundError:
        pass
    if name in ("none", "host"):
        raise NetworkError(f"{name!r} is a network mode, not a network: there is nothing to remove")
    if name == DEFAULT:
        raise NetworkError(f"network {name!r} does not exist now: it is made the first time a "
                           "sandbox uses --network bridge")
    raise NetworkError(f"no such network: {name!r}", hint="`sandbox network ls` lists them")


# -- subnets -------------------------------------------------------------------

def taken_subnets(ignore: str | None = None) -> list[tuple[ipaddress.IPv4Network, str]]:
    """Every subnet in use: host routes (not the default route) and defined networks."""
    taken = [(n.net, f"network {n.name}") for n in list_networks() if n.name != ignore]
    taken += [(net, f"a host route on {dev}") for net, dev in host_routes() if net.prefixlen > 0]
    return taken


def host_routes() -> list[tuple[ipaddress.IPv4Network, str]]:
    """IPv4 routes of the main table, from /proc/net/route (route(8) format)."""
    routes = []
    with open("/proc/net/route") as f:
        next(f)
        for line in f:
            dev, dest, _gw, _flags, _rc, _use, _metric, mask = line.split()[:8]
            dest_ip = ipaddress.IPv4Address(int(dest, 16).to_bytes(4, "little"))
            mask_ip = ipaddress.IPv4Address(int(mask, 16).to_bytes(4, "little"))
            routes.append((ipaddress.IPv4Network(f"{dest_ip}/{mask_ip}", strict=False), dev))
    return routes


def _check_free(net: ipaddress.IPv4Network, ignore: str | None = None) -> None:
    for other, owner in taken_subnets(ignore):
        if net.overlaps(other):
            raise NetworkError(f"subnet {net} overlaps {other} ({owner})",
                               hint="choose another --subnet")


def _choose(pool: list[str]) -> str:
    taken = [net for net, _ in taken_subnets()]
    for candidate in pool:
        net = ipaddress.IPv4Network(candidate)
        if not any(net.overlaps(t) for t in taken):
            return candidate
    raise NetworkError("no free subnet left in the sandbox pools", hint="pass --subnet")


@contextmanager
def _host_lock() -> Iterator[None]:
    HOST_LOCK.parent.mkdir(parents=True, exist_ok=True)
    with locked(HOST_LOCK):
        yield
