"""Pseudo-terminals: a pty of a given devpts, its window size, the controlling terminal.

Man pages: pty(7), ioctl_tty(2) (TIOCSCTTY, TIOCSWINSZ), and the kernel's
Documentation/filesystems/devpts.rst. A container has a devpts instance of
its own (``newinstance``) at /dev/pts; ``open_pty`` makes a pty there the
way runc does since CVE-2025-52565: the ptmx opened is checked *by fd* to
be a devpts multiplexer, and the peer (the "slave") is reached from the
master with TIOCGPTPEER, never by its path /dev/pts/N, which someone in the
container could have replaced between the two steps.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import stat
import struct
import termios

#: statfs(2) f_type of a devpts filesystem.
DEVPTS_SUPER_MAGIC = 0x1CD1
#: The multiplexer's device number (pts/ptmx in every devpts instance).
PTMX_DEVICE = (5, 2)
#: Peers have majors 136 to 143 (UNIX98_PTY_SLAVE_MAJOR and the next seven).
PEER_MAJORS = range(136, 144)
TIOCGPTPEER = 0x5441  # _IO('T', 0x41): open the peer of this master (Linux 4.13)
TIOCSPTLCK = 0x40045431  # _IOW('T', 0x31, int): (un)lock the peer
TIOCSCTTY = termios.TIOCSCTTY

_libc = ctypes.CDLL(None, use_errno=True)
_libc.fstatfs.argtypes = [ctypes.c_int, ctypes.c_void_p]
#: struct statfs is 120 bytes on 64-bit Linux (f_type, a long, first); room to spare.
_STATFS_SIZE = 256
_StatfsBuffer = ctypes.c_char * _STATFS_SIZE  # made here: not first in a forked child


def filesystem_type(fd: int) -> int:
    """The f_type of the filesystem ``fd`` is on (fstatfs(2))."""
    buf = _StatfsBuffer()
    if _libc.fstatfs(fd, buf) < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return ctypes.c_long.from_buffer(buf).value


def open_pty(pts_dir: str) -> tuple[int, int]:
    """A new pty of the devpts mounted at ``pts_dir``: (master, peer), both close-on-exec.

    Neither becomes this process's controlling terminal (O_NOCTTY). OSError
    if ``pts_dir/ptmx`` is not a devpts multiplexer or the peer is no pty.
    """
    flags = os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC
    master = os.open(os.path.join(pts_dir, "ptmx"), flags | os.O_NOFOLLOW)
    try:
        _check_device(master, "ptmx", lambda rdev: (os.major(rdev), os.minor(rdev)) == PTMX_DEVICE)
        fcntl.ioctl(master, TIOCSPTLCK, struct.pack("i", 0))
        peer = fcntl.ioctl(master, TIOCGPTPEER, flags)
    except BaseException:
        os.close(master)
        raise
    try:
        _check_device(peer, "the pty's peer", lambda rdev: os.major(rdev) in PEER_MAJORS)
    except BaseException:
        os.close(master)
        os.close(peer)
        raise
    return master, peer


def _check_device(fd: int, what: str, right_device) -> None:
    """OSError unless ``fd`` is a character device on devpts that ``right_device`` accepts."""
    st = os.fstat(fd)
    if (not stat.S_ISCHR(st.st_mode) or not right_device(st.st_rdev)
            or filesystem_type(fd) != DEVPTS_SUPER_MAGIC):
        raise OSError(errno.EPERM, f"{what} is not a pseudo-terminal device of a devpts")


def set_window_size(fd: int, rows: int, cols: int) -> None:
    """TIOCSWINSZ: the terminal's size; its foreground process group gets SIGWINCH."""
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


def window_size(fd: int) -> tuple[int, int]:
    """TIOCGWINSZ: (rows, cols) of the terminal ``fd``."""
    rows, cols, _, _ = struct.unpack("HHHH", fcntl.ioctl(fd, termios.TIOCGWINSZ, b"\0" * 8))
    return rows, cols


def set_controlling_tty(fd: int) -> None:
    """TIOCSCTTY: make terminal ``fd`` this session leader's controlling terminal."""
    fcntl.ioctl(fd, TIOCSCTTY, 0)
