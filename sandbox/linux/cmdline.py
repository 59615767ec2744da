"""What /proc/PID/cmdline shows for this process: a title we choose, not the argv it started with.

A container's init is a fork of the process that made it, so its argv (the
host's paths to Python, the whole `sandbox run ...` command line) would be
readable by everyone inside through /proc/1/cmdline; a worker started with
``--redis redis://:password@...`` shows the password to every user in ps(1).
``set_cmdline(title)`` makes cmdline read exactly ``title``.

The first choice is prctl(PR_SET_MM, PR_SET_MM_ARG_START/ARG_END), pointing the
kernel at a buffer that holds the title; it needs CAP_SYS_RESOURCE. Without
it, the argv area itself is overwritten in place, as setproctitle(3) does: the
title, a NUL, zeros, and a last byte that is not NUL. With that byte set, the
kernel shows cmdline only up to the first NUL (get_mm_proctitle in
fs/proc/base.c), so exactly the title, cut to the area's size if longer.

The area's bounds (proc(5) stat fields 48 and 49) are read once, at import, and
the prctl function made then: a freshly forked init reads no file and makes
no ctypes object. Man pages: prctl(2), proc(5).
"""

from __future__ import annotations

import ctypes

PR_SET_MM = 35
PR_SET_MM_ARG_START = 8
PR_SET_MM_ARG_END = 9


def _argv_area() -> tuple[int, int]:
    """(start, end) of this process's argv strings; (0, 0) if the kernel does not say."""
    try:
        with open("/proc/self/stat", "rb") as f:
            data = f.read()
        fields = data[data.rindex(b")") + 2:].split()
        return int(fields[45]), int(fields[46])
    except (OSError, ValueError, IndexError):
        return 0, 0


_AREA = _argv_area()
_libc = ctypes.CDLL(None, use_errno=True)
_prctl = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong,
                          ctypes.c_ulong, ctypes.c_ulong, use_errno=True)(("prctl", _libc))
#: Titles the kernel may point at (PR_SET_MM): kept alive for the life of the process.
_TITLES: dict[bytes, ctypes.Array] = {b"sandbox-init": ctypes.create_string_buffer(b"sandbox-init")}


def set_cmdline(title: str) -> None:
    """Make /proc/self/cmdline read ``title`` (and nothing of the original argv)."""
    raw = title.encode()
    if not _point_at(raw):
        _overwrite(raw)


def _point_at(raw: bytes) -> bool:
    """PR_SET_MM the argv bounds to a buffer holding ``raw``; False where not permitted."""
    buffer = _TITLES.get(raw)
    if buffer is None:
        buffer = _TITLES[raw] = ctypes.create_string_buffer(raw)
    address = ctypes.addressof(buffer)
    # start first: the kernel keeps start <= end, and the buffer lies below the stack
    if _prctl(PR_SET_MM, PR_SET_MM_ARG_START, address, 0, 0) != 0:
        return False
    if _prctl(PR_SET_MM, PR_SET_MM_ARG_END, address + len(raw) + 1, 0, 0) != 0:
        _prctl(PR_SET_MM, PR_SET_MM_ARG_START, _AREA[0], 0, 0)
        return False
    return True


def _overwrite(raw: bytes) -> None:
    """The title over the argv strings, then zeros, then a non-NUL last byte."""
    start, end = _AREA
    size = end - start
    if size < 2:
        return
    text = raw[:size - 2]
    ctypes.memset(start, 0, size)
    ctypes.memmove(start, text, len(text))
    ctypes.memset(end - 1, 0x20, 1)
