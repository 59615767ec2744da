"""Opening paths below a directory fd without ever leaving it: openat2(2) and its fallback.

Used where a path comes from untrusted input (an archive member, a workspace
entry) and the directory it is relative to is held open by fd, so nothing can
be swapped between a check and a use. Man pages: openat2(2), path_resolution(7).
"""

from __future__ import annotations

import ctypes
import errno
import os

RESOLVE_NO_XDEV = 0x01
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08
RESOLVE_IN_ROOT = 0x10

#: No symlink followed, no ".." above the start, no /proc magic links.
STRICT = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS

_SYS_OPENAT2 = 437  # the same on every architecture (new syscall table)


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


_libc = ctypes.CDLL(None, use_errno=True)
_openat2 = ctypes.CFUNCTYPE(ctypes.c_long, ctypes.c_long, ctypes.c_int, ctypes.c_char_p,
                            ctypes.POINTER(_OpenHow), ctypes.c_size_t,
                            use_errno=True)(("syscall", _libc))
_HOW_SIZE = ctypes.sizeof(_OpenHow)

#: False once the kernel said it has no openat2 (before 5.6, or a seccomp filter).
have_openat2 = True


def openat2(dir_fd: int, path: str, flags: int, resolve: int, mode: int = 0) -> int:
    """openat2(2): open ``path`` relative to ``dir_fd`` under the ``resolve`` rules.

    Raises OSError as os.open does; ENOSYS where the kernel lacks it.
    """
    how = _OpenHow(flags | os.O_CLOEXEC, mode, resolve)
    fd = _openat2(_SYS_OPENAT2, dir_fd, os.fsencode(path), how, _HOW_SIZE)
    if fd < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), path)
    return fd


def open_dir_beneath(dir_fd: int, parts: list[str], *, create: bool = False) -> int:
    """An O_PATH fd of the directory ``dir_fd/parts...``, no symlink followed on the way.

    Every component must be a real directory below ``dir_fd`` (NotADirectoryError
    names the first that is not); missing ones are made (mode 0755) when
    ``create``. Tries openat2 once for the whole path, then walks component by
    component, each opened with O_NOFOLLOW relative to the one before.
    """
    global have_openat2
    if parts and have_openat2:
        try:
            return openat2(dir_fd, "/".join(parts), os.O_PATH | os.O_DIRECTORY, STRICT)
        except OSError as exc:
            if exc.errno == errno.ENOSYS:
                have_openat2 = False
            elif exc.errno not in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP, errno.EXDEV):
                raise
    return _walk_dirs(dir_fd, parts, create)


def _walk_dirs(dir_fd: int, parts: list[str], create: bool) -> int:
    flags = os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(".", flags, dir_fd=dir_fd)
    try:
        for i, part in enumerate(parts):
            try:
                child = os.open(part, flags, dir_fd=fd)
            except FileNotFoundError:
                if not create:
                    raise
                os.mkdir(part, 0o755, dir_fd=fd)
                child = os.open(part, flags, dir_fd=fd)
            except (NotADirectoryError, OSError) as exc:
                if isinstance(exc, NotADirectoryError) or exc.errno == errno.ELOOP:
                    raise NotADirectoryError(errno.ENOTDIR, "not a directory",
                                             "/".join(parts[:i + 1])) from None
                raise
            os.close(fd)
            fd = child
    except BaseException:
        os.close(fd)
        raise
    return fd
