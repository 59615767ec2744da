"""Sending rtnetlink requests that were encoded elsewhere (rtnetlink(7)).

The parent encodes each request with pyroute2's message classes
(``sandbox.network.requests``); the container's first process only sends the
bytes and reads the acks. So neither it nor the zygote (which every
container is a copy of) loads pyroute2.
"""

from __future__ import annotations

import os
import socket
import struct

NLMSG_ERROR = 2
#: Byte offset of ifi_index (RTM_NEWLINK) and of ifa_index (RTM_NEWADDR) in a
#: request: both follow the 16-byte nlmsghdr after 4 bytes of their own header.
INDEX_OFFSET = 20


def open_socket() -> socket.socket:
    """A NETLINK_ROUTE socket in the *current* network namespace (fixed at creation)."""
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC,
                         socket.NETLINK_ROUTE)
    sock.bind((0, 0))
    return sock


def request(sock: socket.socket, data: bytes, what: str) -> None:
    """Send one encoded request (with NLM_F_ACK) and wait for its ack; OSError on a nack."""
    sock.send(data)
    reply = sock.recv(65536)
    _length, kind, _flags, _seq, _pid, error = struct.unpack_from("=IHHIIi", reply)
    if kind == NLMSG_ERROR and error:
        raise OSError(-error, f"{what}: {os.strerror(-error)}")


def with_index(data: bytes, index: int) -> bytes:
    """An RTM_NEWLINK or RTM_NEWADDR request for the interface ``index``."""
    patched = bytearray(data)
    struct.pack_into("=i", patched, INDEX_OFFSET, index)
    return bytes(patched)
