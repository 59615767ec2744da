"""rtnetlink requests on a plain socket, encoded by pyroute2's message classes.

Used in the container's first process, where time counts: pyroute2's
IPRoute object takes ~4 ms to open in a freshly forked process and ~1.5 ms
per request (it runs an asyncio loop), while these four requests on a plain
NETLINK_ROUTE socket take ~0.3 ms each plus the kernel's own work
(measured: bench/network.py and the report of issue 3). The messages are
pyroute2's (ifinfmsg, ifaddrmsg, rtmsg); only the transport is ours.
See rtnetlink(7).
"""

from __future__ import annotations

import os
import socket
import struct

from pyroute2.netlink import NLM_F_ACK, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REQUEST, NLMSG_ERROR
from pyroute2.netlink.rtnl import RTM_NEWADDR, RTM_NEWLINK, RTM_NEWROUTE
from pyroute2.netlink.rtnl.ifaddrmsg import ifaddrmsg
from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg
from pyroute2.netlink.rtnl.rtmsg import rtmsg

IFF_UP = 0x1
RT_TABLE_MAIN = 254
RTPROT_BOOT = 3
RTN_UNICAST = 1


def open_socket() -> socket.socket:
    """A NETLINK_ROUTE socket in the *current* network namespace (fixed at creation)."""
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC,
                         socket.NETLINK_ROUTE)
    sock.bind((0, 0))
    return sock


def request(sock: socket.socket, msg, kind: int, flags: int, what: str) -> None:
    """Send one request and wait for its ack; OSError(errno, what) on a nack."""
    msg["header"]["type"] = kind
    msg["header"]["flags"] = NLM_F_REQUEST | NLM_F_ACK | flags
    msg["header"]["sequence_number"] = 1
    msg.encode()
    sock.send(msg.data)
    reply = sock.recv(65536)
    _length, reply_kind, _flags, _seq, _pid, error = struct.unpack_from("=IHHIIi", reply)
    if reply_kind == NLMSG_ERROR and error:
        raise OSError(-error, f"{what}: {os.strerror(-error)}")


def add_veth(sock: socket.socket, name: str, master: int, peer: str, peer_netns_fd: int,
             peer_mac: str) -> None:
    """One request: a veth pair, ``name`` up on bridge ``master`` in the socket's
    namespace, ``peer`` (with ``peer_mac``) already in the namespace of ``peer_netns_fd``."""
    peer_msg = {"attrs": [("IFLA_IFNAME", peer), ("IFLA_NET_NS_FD", peer_netns_fd),
                          ("IFLA_ADDRESS", peer_mac)]}
    msg = ifinfmsg()
    msg["flags"] = msg["change"] = IFF_UP
    msg["attrs"] = [
        ("IFLA_IFNAME", name), ("IFLA_MASTER", master),
        ("IFLA_LINKINFO", {"attrs": [("IFLA_INFO_KIND", "veth"), ("IFLA_INFO_DATA",
                                     {"attrs": [("VETH_INFO_PEER", peer_msg)]})]}),
    ]
    request(sock, msg, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, f"create veth {name}")


def add_address(sock: socket.socket, index: int, address: str, prefixlen: int) -> None:
    msg = ifaddrmsg()
    msg["family"] = socket.AF_INET
    msg["prefixlen"] = prefixlen
    msg["index"] = index
    msg["attrs"] = [("IFA_LOCAL", address), ("IFA_ADDRESS", address)]
    request(sock, msg, RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, f"add address {address}")


def link_up(sock: socket.socket, index: int) -> None:
    msg = ifinfmsg()
    msg["index"] = index
    msg["flags"] = msg["change"] = IFF_UP
    request(sock, msg, RTM_NEWLINK, 0, "bring the link up")


def add_default_route(sock: socket.socket, gateway: str) -> None:
    msg = rtmsg()
    msg["family"] = socket.AF_INET
    msg["table"] = RT_TABLE_MAIN
    msg["proto"] = RTPROT_BOOT
    msg["type"] = RTN_UNICAST
    msg["attrs"] = [("RTA_GATEWAY", gateway)]
    request(sock, msg, RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, f"add default route via {gateway}")
