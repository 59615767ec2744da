"""The new mount API for overlays of any depth: fsopen(2), fsconfig(2), fsmount(2), move_mount(2).

mount(2) takes an overlay's options as one string that must fit a page,
which caps a stack of lower dirs at a few dozen store paths. Since Linux
6.8 overlayfs takes each lower dir as its own ``lowerdir+`` parameter
(Documentation/filesystems/overlayfs.rst), with no length limit but the
stack's (500). A failed fsconfig leaves the kernel's reason in the context's
message log, read back into the error.
"""

from __future__ import annotations

import ctypes
import os
from functools import cache

__all__ = ["lowerdir_plus_supported", "mount_overlay"]

_SYS_MOVE_MOUNT, _SYS_FSOPEN, _SYS_FSCONFIG, _SYS_FSMOUNT = 429, 430, 431, 432  # all architectures
FSOPEN_CLOEXEC = 0x1
FSCONFIG_SET_STRING = 1
FSCONFIG_CMD_CREATE = 6
FSMOUNT_CLOEXEC = 0x1
MOVE_MOUNT_F_EMPTY_PATH = 0x4
_AT_FDCWD = -100

_libc = ctypes.CDLL(None, use_errno=True)
_fsopen = ctypes.CFUNCTYPE(ctypes.c_long, ctypes.c_long, ctypes.c_char_p, ctypes.c_uint,
                           use_errno=True)(("syscall", _libc))
_fsconfig = ctypes.CFUNCTYPE(ctypes.c_long, ctypes.c_long, ctypes.c_int, ctypes.c_uint,
                             ctypes.c_char_p, ctypes.c_char_p, ctypes.c_int,
                             use_errno=True)(("syscall", _libc))
_fsmount = ctypes.CFUNCTYPE(ctypes.c_long, ctypes.c_long, ctypes.c_int, ctypes.c_uint, ctypes.c_uint,
                            use_errno=True)(("syscall", _libc))
_move_mount = ctypes.CFUNCTYPE(ctypes.c_long, ctypes.c_long, ctypes.c_int, ctypes.c_char_p,
                               ctypes.c_int, ctypes.c_char_p, ctypes.c_uint,
                               use_errno=True)(("syscall", _libc))


def _failed(what: str, fs_fd: int = -1, path: str | None = None) -> OSError:
    err = ctypes.get_errno()
    detail = os.strerror(err)
    log = _context_log(fs_fd)
    if log:
        detail = f"{detail} ({log})"
    return OSError(err, f"{what}: {detail}", path)


def _context_log(fs_fd: int) -> str:
    """The kernel's messages about a filesystem context (read(2) on its fd, one per call)."""
    lines = []
    while fs_fd >= 0:
        try:
            line = os.read(fs_fd, 512)
        except OSError:
            break
        if not line:
            break
        lines.append(line.decode(errors="replace").strip())
    return "; ".join(lines)


def _set(fs_fd: int, key: str, value: str) -> None:
    if _fsconfig(_SYS_FSCONFIG, fs_fd, FSCONFIG_SET_STRING, key.encode(), os.fsencode(value), 0) < 0:
        raise _failed(f"overlay option {key}", fs_fd, value)


def mount_overlay(target: str, lowers: tuple[str, ...] | list[str], upper: str, work: str,
                  options: tuple[tuple[str, str], ...] = (), attrs: int = 0) -> None:
    """Mount an overlay on ``target``: ``lowers`` topmost first, each its own ``lowerdir+``.

    ``attrs``: MOUNT_ATTR_* flags of the new mount (NOSUID and NODEV have the
    values of MS_NOSUID and MS_NODEV).
    """
    fs_fd = _fsopen(_SYS_FSOPEN, b"overlay", FSOPEN_CLOEXEC)
    if fs_fd < 0:
        raise _failed("fsopen overlay")
    try:
        for lower in lowers:
            _set(fs_fd, "lowerdir+", lower)
        _set(fs_fd, "upperdir", upper)
        _set(fs_fd, "workdir", work)
        for key, value in options:
            _set(fs_fd, key, value)
        if _fsconfig(_SYS_FSCONFIG, fs_fd, FSCONFIG_CMD_CREATE, None, None, 0) < 0:
            raise _failed("create the overlay", fs_fd, target)
        mnt_fd = _fsmount(_SYS_FSMOUNT, fs_fd, FSMOUNT_CLOEXEC, attrs)
        if mnt_fd < 0:
            raise _failed("fsmount overlay", fs_fd, target)
        try:
            if _move_mount(_SYS_MOVE_MOUNT, mnt_fd, b"", _AT_FDCWD, os.fsencode(target),
                           MOVE_MOUNT_F_EMPTY_PATH) < 0:
                raise _failed("move_mount overlay", -1, target)
        finally:
            os.close(mnt_fd)
    finally:
        os.close(fs_fd)


@cache
def lowerdir_plus_supported() -> bool:
    """True when this kernel's overlayfs takes ``lowerdir+`` through fsconfig (6.8+).

    Before overlayfs moved to the new mount API (6.5) fsconfig takes any key
    and only piles it into the legacy option page, which then overflows at
    mount time: so an unknown key must be refused too.
    """
    fs_fd = _fsopen(_SYS_FSOPEN, b"overlay", FSOPEN_CLOEXEC)
    if fs_fd < 0:
        return False
    try:
        if _fsconfig(_SYS_FSCONFIG, fs_fd, FSCONFIG_SET_STRING, b"sandbox-no-such-key", b"x", 0) == 0:
            return False  # the legacy path: every key is taken, none is understood
        return _fsconfig(_SYS_FSCONFIG, fs_fd, FSCONFIG_SET_STRING, b"lowerdir+", b"/", 0) == 0
    finally:
        os.close(fs_fd)


