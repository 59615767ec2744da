"""Networks: ``none``, ``host``, ``bridge`` and named networks (pyroute2, netlink).

``none`` and ``host`` need nothing here (the child unshares the network
namespace, or not, and brings lo up). For ``bridge`` and named networks:

- ``attach`` (in the parent, before anything runs) leases an address,
  adds the member to the network's /etc/hosts, opens --egress and -p in the
  network's firewall table, and returns the plan steps that make the veth
  pair from inside the container's setup (requests encoded by ``requests``,
  sent by ``sandbox.linux.rtnetlink``);
- the pair needs no undo: its container end lives in the container's
  namespace, and the kernel deletes both ends when that namespace dies;
- ``Attachment.detach`` gives the lease and ports back; ``detach_record``
  does the same from a crashed sandbox's record (`sandbox gc`), and
  ``collect`` removes what no record explains.

Modules: ``model`` (data), ``registry`` (definitions, subnets), ``ipam``
(leases, hosts file), ``bridge`` and ``firewall`` (host side), ``requests``
(the container side's requests, encoded), ``cli`` (`sandbox network ...`).
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from typing import Any

from ..errors import NetworkError
from ..plan import Op
from . import ipam, registry
from .model import PEER_NAME, VETH_PREFIX, Network, mac_for, veth_name

__all__ = [
    "Attachment",
    "attach",
    "collect",
    "create_network",
    "detach_record",
    "list_networks",
    "persistent_links",
    "preview",
    "remove_network",
]

create_network = registry.create
remove_network = registry.remove
list_networks = registry.list_networks


@dataclass(frozen=True)
class Attachment:
    """One sandbox's place on a network, and the plan ops that connect it."""

    network: Network
    sandbox_id: str
    address: str
    alias: str | None
    egress: bool
    publish: tuple[tuple[int, int], ...]
    pre_ops: tuple[Op, ...] = field(default=())
    ops: tuple[Op, ...] = field(default=())
    #: (host file, container path): read-only binds into the container's root
    binds: tuple[tuple[str, str], ...] = field(default=())
    #: Ports of the host this member may connect to (``--allow-host-port``)
    host_ports: tuple[int, ...] = field(default=())

    @property
    def veth(self) -> str:
        return veth_name(self.sandbox_id)

    def detach(self) -> None:
        """Close ports, give the address back, leave /etc/hosts; idempotent."""
        _release(self.network, self.address, self.sandbox_id, self.egress, self.publish,
                 self.host_ports)

    def describe(self) -> str:
        """What is reserved on the host for this sandbox, in one line (for plans)."""
        isolated = ", isolated" if self.network.isolated else ""
        text = (f"lease {self.address or '<address>'} on network {self.network.name} "
                f"({self.network.bridge}{isolated})")
        if self.egress:
            text += ", egress open"
        if self.publish:
            text += ", publish " + ", ".join(f"127.0.0.1:{h}->{p}" for h, p in self.publish)
        if self.host_ports:
            text += ", host ports " + ", ".join(map(str, self.host_ports)) + " open to it"
        return text

    def as_record(self) -> dict[str, Any]:
        return {"network": self.network.name, "bridge": self.network.bridge,
                "address": self.address, "veth": self.veth, "egress": self.egress,
                "publish": [list(p) for p in self.publish], "host_ports": list(self.host_ports)}


def attach(spec: Any, sandbox_id: str, record: Any) -> Attachment:
    """Reserve a place for the sandbox on its network; record it for gc."""
    net_spec = spec.network
    network = registry.get(net_spec.mode)
    registry.ensure(network)
    publish = tuple((p.host_port, p.port) for p in net_spec.publish)
    _check_host_ports(publish)
    alias = net_spec.alias or spec.name
    master = _bridge_index(network)
    address = ipam.allocate(network, sandbox_id, alias)
    attachment = _connect(network, sandbox_id, address, alias, net_spec.egress, publish, master,
                          net_spec.allow_host_ports)
    record.network = attachment.as_record()
    try:
        _open_ports(attachment)
    except BaseException:
        attachment.detach()
        raise
    return attachment


def preview(spec: Any, sandbox_id: str) -> Attachment:
    """The Attachment ``attach`` would make, with its steps, reserving and making nothing.

    For ``sandbox run --dry-run``: the steps are the ones a run performs, named
    the same way, but the address is not leased (it reads ``<address>``) and
    no request is encoded.
    """
    net_spec = spec.network
    network = registry.get(net_spec.mode, define=False)
    publish = tuple((p.host_port, p.port) for p in net_spec.publish)
    return _connect(network, sandbox_id, None, net_spec.alias or spec.name, net_spec.egress,
                    publish, 0, net_spec.allow_host_ports)


def _bridge_index(network: Network) -> int:
    try:
        return socket.if_nametoindex(network.bridge)
    except OSError as exc:
        raise NetworkError(f"the bridge {network.bridge} of network {network.name} is gone: {exc}",
                           hint=f"sandbox network rm {network.name}, then create it again") from exc


def _connect(network: Network, sandbox_id: str, address: str | None, alias: str | None,
             egress: bool, publish: tuple[tuple[int, int], ...], master: int,
             host_ports: tuple[int, ...] = ()) -> Attachment:
    """The Attachment with its plan steps (data, encoded here; nothing is done here).

    The first process opens a netlink socket in the host's namespace before
    unshare (a spare has one already), sends the veth request on it, and
    configures its end (PEER_NAME) from inside; the network's hosts file is
    bound read-only on /etc/hosts (ipam rewrites it in place, so members see
    every change). On an isolated network the host's end of the pair becomes an
    isolated bridge port. Without an ``address`` (a preview) no request is
    encoded.
    """
    where = f"network {network.name} ({network.bridge})"
    pre_ops = (Op("host_netlink", (), f"open a netlink socket for {where}"),)
    requests: tuple = ()
    if address is not None:
        from . import requests as rt  # pyroute2's message classes: in the parent only

        requests = (rt.veth_request(veth_name(sandbox_id), master, PEER_NAME, mac_for(address)),
                    rt.address_request(address, network.prefixlen),
                    rt.link_up_request(), rt.default_route_request(network.gateway))
        if network.isolated:
            requests += (rt.isolate_port_request(veth_name(sandbox_id)),)
    port = ", its bridge port isolated" if network.isolated else ""
    ops = (Op("plug", (PEER_NAME, *requests),
              f"connect {PEER_NAME} to {where} as {address or '<address>'}{port}"),)
    binds = ((str(ipam.hosts_path(network)), "/etc/hosts"),)
    return Attachment(network, sandbox_id, address or "", alias, egress, publish, pre_ops, ops,
                      binds, host_ports)


def _open_ports(attachment: Attachment) -> None:
    if attachment.publish:
        from .bridge import allow_localnet

        allow_localnet(attachment.network)
    if attachment.egress or attachment.publish or attachment.host_ports:
        from . import firewall

        firewall.open_ports(attachment.network, attachment.address, attachment.egress,
                            attachment.publish, attachment.host_ports)


def _check_host_ports(publish: tuple[tuple[int, int], ...]) -> None:
    """Refuse a host port something on 127.0.0.1 listens on, or another sandbox publishes.

    A published port is a DNAT rule, not a listening socket: the bind probe
    alone cannot see another sandbox's -p.
    """
    if not publish:
        return
    taken = _published_ports()
    for host_port, _ in publish:
        if host_port in taken:
            raise NetworkError(f"host port {host_port} is already published by sandbox "
                               f"{taken[host_port]}", hint="choose another -p HOSTPORT")
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", host_port))
            except OSError:
                raise NetworkError(f"host port {host_port} on 127.0.0.1 is already in use",
                                   hint="choose another -p HOSTPORT") from None


def _published_ports() -> dict[int, str]:
    """Host port -> the live sandbox (name or id) that publishes it."""
    from .. import state

    taken = {}
    for _sdir, record in state.iter_records():
        if record is not None and record.network and record.owner_alive:
            for host_port, _port in record.network.get("publish", ()):
                taken[int(host_port)] = record.name or record.id
    return taken


def _release(network: Network, address: str, sandbox_id: str, egress: bool,
             publish: tuple[tuple[int, int], ...], host_ports: tuple[int, ...] = ()) -> None:
    if egress or publish or host_ports:
        from . import firewall

        firewall.close_ports(network, address, egress, publish, host_ports)
    ipam.release(network, address, sandbox_id)


def detach_record(record: Any) -> None:
    """Undo a crashed sandbox's attachment from its record (for `sandbox gc`)."""
    data = record.network
    try:
        network = registry.get(data["network"])
    except NetworkError:
        return
    _release(network, data["address"], record.id, bool(data.get("egress")),
             tuple(tuple(p) for p in data.get("publish", ())),
             tuple(int(p) for p in data.get("host_ports", ())))
    _delete_leftover_veth(data.get("veth"))


def _delete_leftover_veth(veth: str | None) -> None:
    if veth and os.path.exists(f"/sys/class/net/{veth}"):
        from .bridge import delete_link

        delete_link(veth)


def collect(report: Any) -> None:
    """gc: drop leases of vanished sandboxes; remove veths no live sandbox owns,
    and temporary networks whose owner died.

    Only veths on this installation's bridges are looked at: another state
    directory's sandboxes (another test session) are not ours to judge.
    """
    from .. import state

    for network in registry.list_networks():
        try:
            for lease in ipam.prune(network):
                report.removed.append(f"lease {lease.address} on {network.name}")
            for veth in _veths_on(network.bridge):
                sandbox_id = veth[len(VETH_PREFIX):]
                if not (state.sandboxes_dir() / sandbox_id).exists():
                    _delete_leftover_veth(veth)
                    report.removed.append(f"veth {veth}")
            if registry.owner_gone(network.name):
                registry.remove(network.name)
                report.removed.append(f"network {network.name} (its owner died)")
        except (NetworkError, OSError) as exc:
            report.errors.append(f"network {network.name}: {exc}")


def _veths_on(bridge: str) -> list[str]:
    try:
        ports = os.listdir(f"/sys/class/net/{bridge}/brif")
    except FileNotFoundError:
        return []
    return [p for p in ports if p.startswith(VETH_PREFIX)]


def persistent_links() -> list[str]:
    """Bridges that stay on purpose: the default one and every named network's
    (not a temporary network's: it goes with its owner)."""
    names = {os.environ.get("SANDBOX_BRIDGE", registry.DEFAULT_BRIDGE)}
    names.update(n.bridge for n in registry.list_networks() if not registry.is_temporary(n.name))
    return sorted(names)
