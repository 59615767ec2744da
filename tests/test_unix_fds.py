"""Passing fds over unix sockets (sandbox.linux.unix): with socket objects and with bare fds.

No root needed. The serving loops (fork server, zygote) pass their socket objects,
the container's processes bare fds: both must carry the same fds, close-on-exec,
and refuse more fds than expected without keeping them.
"""

from __future__ import annotations

import os
import socket

import pytest

from sandbox.linux import unix


@pytest.fixture
def pair():
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    yield ours, theirs
    ours.close()
    theirs.close()


def open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


@pytest.mark.parametrize("send_as", ["object", "fd"])
@pytest.mark.parametrize("recv_as", ["object", "fd"])
def test_fds_arrive_as_copies_that_close_on_exec(pair, tmp_path, send_as, recv_as):
    ours, theirs = pair
    path = tmp_path / "f"
    path.write_text("x")
    fd = os.open(path, os.O_RDONLY)
    try:
        unix.send_fds(ours if send_as == "object" else ours.fileno(), b"hello", [fd, fd])
        data, got = unix.recv_fds(theirs if recv_as == "object" else theirs.fileno(), 64, 2)
    finally:
        os.close(fd)
    try:
        assert data == b"hello" and len(got) == 2
        for copy in got:
            assert os.fstat(copy).st_ino == path.stat().st_ino
            assert not os.get_inheritable(copy)
    finally:
        for copy in got:
            os.close(copy)
    assert ours.fileno() >= 0 and theirs.fileno() >= 0  # bare fds were not closed by a wrapper


def test_more_fds_than_expected_are_refused_and_closed(pair):
    ours, theirs = pair
    r, w = os.pipe()
    try:
        before = open_fds()
        unix.send_fds(ours, b"m", [r, w, r])
        with pytest.raises(OSError, match="more file descriptors"):
            unix.recv_fds(theirs, 64, 2)
        assert open_fds() == before
    finally:
        os.close(r)
        os.close(w)


def test_a_closed_peer_reads_as_an_empty_message(pair):
    ours, theirs = pair
    ours.close()
    assert unix.recv_fds(theirs, 64, 2) == (b"", [])
