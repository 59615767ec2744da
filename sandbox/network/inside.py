"""The network steps the container's first process performs (plan ops).

``prepare`` runs before unshare, in the host's namespaces: it opens a
netlink socket there (a socket keeps the namespace it was made in) and, for
/etc/hosts, a detached clone of the network's hosts file (open_tree(2)).
``plug`` runs after unshare and pivot_root: with the host socket it makes
the veth pair in one request, the host end on the bridge and the peer
created directly inside the container's new namespace; a socket made
inside then sets the address, brings eth0 up and adds the default route.
``mount_hosts`` moves the hosts clone onto /etc/hosts (move_mount(2)).

Nothing here needs undo: the peer lives in the container's namespace, so
when the kernel destroys that namespace (its last process gone, even after
SIGKILL) it deletes the pair. Every fd is closed before the command starts,
and all are O_CLOEXEC: the host socket must never reach the command.
"""

from __future__ import annotations

import os
import socket

from .. import linux
from . import netlink

_held: dict[str, object] = {}


def prepare(bridge: str, hosts_file: str) -> None:
    """In the host's namespaces: the bridge's index, a host socket, the hosts clone."""
    _held["master"] = socket.if_nametoindex(bridge)
    _held["host"] = netlink.open_socket()
    _held["hosts"] = linux.open_tree_clone(hosts_file)


def plug(veth: str, mac: str, address: str, prefixlen: int, gateway: str) -> None:
    """In the container's namespace: make the veth pair, then configure eth0."""
    host = _held.pop("host")
    netns = os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        netlink.add_veth(host, veth, _held.pop("master"), "eth0", netns, mac)
    finally:
        os.close(netns)
        host.close()
    with netlink.open_socket() as sock:
        index = socket.if_nametoindex("eth0")
        netlink.add_address(sock, index, address, prefixlen)
        netlink.link_up(sock, index)
        netlink.add_default_route(sock, gateway)


def mount_hosts() -> None:
    """Put the network's hosts file on /etc/hosts, read-only."""
    tree = _held.pop("hosts")
    try:
        if not os.path.exists("/etc/hosts"):
            os.makedirs("/etc", exist_ok=True)
            with open("/etc/hosts", "a"):
                pass
        linux.move_mount_to(tree, "/etc/hosts")
    finally:
        os.close(tree)
