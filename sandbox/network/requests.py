"""rtnetlink requests, encoded with pyroute2's message classes, as bytes.

The parent encodes them (``sandbox.network.attach``) and the container's
first process sends them on a plain NETLINK_ROUTE socket
(``sandbox.linux.rtnetlink``): pyroute2's IPRoute is slow to open in a
freshly forked process and runs an asyncio loop per request, and importing
pyroute2 at all would make the zygote, and so every container, bigger. The
interface index of the container's end is not known until the pair exists:
the first process writes it into the address and link requests
(``linux.rtnetlink.with_index``). See rtnetlink(7).
"""

from __future__ import annotations

import socket

from pyroute2.netlink import NLM_F_ACK, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REQUEST
from pyroute2.netlink.rtnl import RTM_NEWADDR, RTM_NEWLINK, RTM_NEWROUTE
from pyroute2.netlink.rtnl.ifaddrmsg import ifaddrmsg
from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg
from pyroute2.netlink.rtnl.rtmsg import rtmsg

IFF_UP = 0x1
RT_TABLE_MAIN = 254
RTPROT_BOOT = 3
RTN_UNICAST = 1


def _encode(msg, kind: int, flags: int) -> bytes:
    msg["header"]["type"] = kind
    msg["header"]["flags"] = NLM_F_REQUEST | NLM_F_ACK | flags
    msg["header"]["sequence_number"] = 1
    msg.encode()
    return bytes(msg.data)


def veth_request(name: str, master: int, peer: str, peer_mac: str) -> bytes:
    """A veth pair: ``name`` up on bridge ``master`` in the sender's namespace and ``peer``
    (with ``peer_mac``) in the network namespace of the sender's pid 1: the sender."""
    peer_msg = {"attrs": [("IFLA_IFNAME", peer), ("IFLA_NET_NS_PID", 1), ("IFLA_ADDRESS", peer_mac)]}
    msg = ifinfmsg()
    msg["flags"] = msg["change"] = IFF_UP
    msg["attrs"] = [
        ("IFLA_IFNAME", name), ("IFLA_MASTER", master),
        ("IFLA_LINKINFO", {"attrs": [("IFLA_INFO_KIND", "veth"), ("IFLA_INFO_DATA",
                                     {"attrs": [("VETH_INFO_PEER", peer_msg)]})]}),
    ]
    return _encode(msg, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL)


def isolate_port_request(name: str) -> bytes:
    """Set the bridge port flag ``isolated`` on link ``name`` (IFLA_BRPORT_ISOLATED, Linux
    4.18): the bridge forwards no frame between two isolated ports, only to and from the
    others and the bridge itself (the gateway). The link is found by name: its index is
    not known when the request is encoded."""
    msg = ifinfmsg()
    msg["attrs"] = [
        ("IFLA_IFNAME", name),
        ("IFLA_LINKINFO", {"attrs": [("IFLA_INFO_SLAVE_KIND", "bridge"), ("IFLA_INFO_SLAVE_DATA",
                                     {"attrs": [("IFLA_BRPORT_ISOLATED", 1)]})]}),
    ]
    return _encode(msg, RTM_NEWLINK, 0)


def address_request(address: str, prefixlen: int) -> bytes:
    """Add ``address/prefixlen`` (the interface index is set by the sender)."""
    msg = ifaddrmsg()
    msg["family"] = socket.AF_INET
    msg["prefixlen"] = prefixlen
    msg["attrs"] = [("IFA_LOCAL", address), ("IFA_ADDRESS", address)]
    return _encode(msg, RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL)


def link_up_request() -> bytes:
    """Bring a link up (the interface index is set by the sender)."""
    msg = ifinfmsg()
    msg["flags"] = msg["change"] = IFF_UP
    return _encode(msg, RTM_NEWLINK, 0)


def default_route_request(gateway: str) -> bytes:
    msg = rtmsg()
    msg["family"] = socket.AF_INET
    msg["table"] = RT_TABLE_MAIN
    msg["proto"] = RTPROT_BOOT
    msg["type"] = RTN_UNICAST
    msg["attrs"] = [("RTA_GATEWAY", gateway)]
    return _encode(msg, RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL)
