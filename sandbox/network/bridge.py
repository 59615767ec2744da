"""A network's bridge on the host: made, checked and removed with pyroute2.

The bridge carries the gateway address and a fixed MAC; IPv6 is off on it,
so members cannot reach the host over link-local addresses. Its firewall
table (see ``firewall``) is made and removed with it.
"""

from __future__ import annotations

import os

from ..errors import NetworkError
from . import firewall
from .model import Network, bridge_mac


def exists(network: Network) -> bool:
    return os.path.exists(f"/sys/class/net/{network.bridge}")


def create(network: Network) -> None:
    """Make the bridge with its gateway address, bring it up, install its rules."""
    from pyroute2 import IPRoute
    from pyroute2.netlink.exceptions import NetlinkError

    try:
        with IPRoute() as ipr:
            ipr.link("add", ifname=network.bridge, kind="bridge", address=bridge_mac(network.subnet))
            index = ipr.link_lookup(ifname=network.bridge)[0]
            _sysctl(f"ipv6/conf/{network.bridge}/disable_ipv6", "1")
            ipr.addr("add", index=index, address=network.gateway, prefixlen=network.prefixlen)
            ipr.link("set", index=index, state="up")
    except NetlinkError as exc:
        _delete_link(network.bridge)
        raise NetworkError(f"could not make bridge {network.bridge} for network "
                           f"{network.name!r}: {exc}") from exc
    try:
        firewall.install(network)
    except NetworkError:
        _delete_link(network.bridge)
        raise


def delete(network: Network) -> None:
    """Remove the bridge and its firewall table (both may already be gone)."""
    firewall.uninstall(network)
    _delete_link(network.bridge)


def delete_link(name: str) -> bool:
    """Remove a link by name; False if it was not there."""
    return _delete_link(name)


def _delete_link(name: str) -> bool:
    from pyroute2 import IPRoute
    from pyroute2.netlink.exceptions import NetlinkError

    with IPRoute() as ipr:
        try:
            index = ipr.link_lookup(ifname=name)
            if not index:
                return False
            ipr.link("del", index=index[0])
            return True
        except NetlinkError as exc:
            if exc.code == 19:  # ENODEV: it went away meanwhile
                return False
            raise NetworkError(f"could not remove link {name}: {exc}") from exc


def _sysctl(name: str, value: str) -> None:
    with open(f"/proc/sys/net/{name}", "w") as f:
        f.write(value)


def allow_localnet(network: Network) -> None:
    """route_localnet on the bridge: needed to DNAT 127.0.0.1 to a member (for -p).

    The firewall drops packets for 127.0.0.0/8 that arrive from the bridge,
    so members still cannot reach the host's loopback services.
    """
    _sysctl(f"ipv4/conf/{network.bridge}/route_localnet", "1")
