"""File descriptors passed between processes over unix sockets (unix(7), SCM_RIGHTS).

``socket.recv_fds`` in Python 3.11 ignores its flags (cpython #128881), so the
descriptors it receives are inheritable for a moment, and a fork meanwhile
would carry them into a container. ``recv_fds`` here calls recvmsg with
MSG_CMSG_CLOEXEC itself, so they are close-on-exec from the first instant.
"""

from __future__ import annotations

import array
import os
import socket

_INT_SIZE = array.array("i").itemsize
# Plain ints, not the socket module's MsgFlag members: ``flags & MSG_CTRUNC`` with an
# IntFlag runs the enum module's Python code, whose objects every forking server and
# freshly forked child would then write, and so copy (bench/README.md).
_MSG_CMSG_CLOEXEC = int(socket.MSG_CMSG_CLOEXEC)
_MSG_CTRUNC = int(socket.MSG_CTRUNC)


def send_fds(sock: int | socket.socket, data: bytes, fds: list[int] | tuple[int, ...]) -> None:
    """Send ``data`` with ``fds`` attached on socket ``sock`` (an object, or an fd): a
    copy of each arrives at the other end. As in ``recv_fds``, a socket object is used
    as it is: no object is made per message."""
    if isinstance(sock, socket.socket):
        socket.send_fds(sock, [data], list(fds))
        return
    wrapped = socket.socket(fileno=sock)
    try:
        socket.send_fds(wrapped, [data], list(fds))
    finally:
        wrapped.detach()


def recv_fds(sock: int | socket.socket, size: int, maxfds: int) -> tuple[bytes, list[int]]:
    """One message on socket ``sock`` (an object, or an fd) and the fds that came with
    it, each close-on-exec.

    Descriptors beyond ``maxfds`` (or a truncated control message) are closed
    here and refused with an OSError: a peer never leaves us fds we did not expect.
    A socket object is used as it is: loops that serve requests pass theirs, so no
    object is made per message (in a forking server every object made is a copied page).
    """
    if isinstance(sock, socket.socket):
        data, ancdata, flags, _ = sock.recvmsg(size, socket.CMSG_SPACE(maxfds * _INT_SIZE),
                                               _MSG_CMSG_CLOEXEC)
    else:
        wrapped = socket.socket(fileno=sock)
        try:
            data, ancdata, flags, _ = wrapped.recvmsg(size, socket.CMSG_SPACE(maxfds * _INT_SIZE),
                                                      _MSG_CMSG_CLOEXEC)
        finally:
            wrapped.detach()
    fds = array.array("i")
    for level, kind, payload in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(payload[:len(payload) - (len(payload) % _INT_SIZE)])
    if flags & _MSG_CTRUNC or len(fds) > maxfds:
        for fd in fds:
            os.close(fd)
        raise OSError(f"more file descriptors came with a message than the {maxfds} expected")
    return data, list(fds)
