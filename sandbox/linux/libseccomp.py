"""libseccomp through ctypes: a seccomp filter's rules in, its BPF program out.

Only the owner of a sandbox compiles (``sandbox.security.filters``), once
per profile and capability set; the container's processes load the
finished program with seccomp(2) (``seccomp.load_filter``) and never load
this library. libseccomp resolves syscall names per architecture (x86_64
with its x86 and x32 sub-architectures, aarch64 with arm, ...). Its program
is the reference that ``sandbox.security.assembler``'s shorter one is tested
against, and what that assembler leaves alone is compiled here. Man pages:
seccomp_init(3), seccomp_rule_add(3), seccomp_export_bpf(3), seccomp_arch_add(3),
seccomp_attr_set(3).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from functools import cache

__all__ = [
    "ACT_ALLOW", "ACT_KILL_PROCESS", "ACT_KILL_THREAD", "ACT_LOG", "ACT_TRAP", "COMPARE_OPS",
    "Compiler", "LibseccompMissing", "act_errno", "act_trace", "native_arch", "resolve_arch",
    "syscall_number", "version",
]

ACT_KILL_PROCESS = 0x80000000
ACT_KILL_THREAD = 0x00000000
ACT_TRAP = 0x00030000
ACT_LOG = 0x7FFC0000
ACT_ALLOW = 0x7FFF0000
_ACT_ERRNO = 0x00050000
_ACT_TRACE = 0x7FF00000

#: enum scmp_compare
COMPARE_OPS = {"SCMP_CMP_NE": 1, "SCMP_CMP_LT": 2, "SCMP_CMP_LE": 3, "SCMP_CMP_EQ": 4,
               "SCMP_CMP_GE": 5, "SCMP_CMP_GT": 6, "SCMP_CMP_MASKED_EQ": 7}
#: enum scmp_filter_attr
_ATTR_ACT_BADARCH = 2
_ATTR_CTL_NNP = 3
_ATTR_CTL_OPTIMIZE = 8
_NR_SCMP_ERROR = -1


class LibseccompMissing(OSError):
    """libseccomp (Debian: libseccomp2) is not installed."""


def act_errno(errno_value: int) -> int:
    return _ACT_ERRNO | (errno_value & 0xFFFF)


def act_trace(message: int) -> int:
    return _ACT_TRACE | (message & 0xFFFF)


class _ArgCmp(ctypes.Structure):
    _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int), ("datum_a", ctypes.c_uint64),
                ("datum_b", ctypes.c_uint64)]


class _Version(ctypes.Structure):
    _fields_ = [("major", ctypes.c_uint), ("minor", ctypes.c_uint), ("micro", ctypes.c_uint)]


@cache
def _lib() -> ctypes.CDLL:
    name = ctypes.util.find_library("seccomp") or "libseccomp.so.2"
    try:
        lib = ctypes.CDLL(name, use_errno=True)
    except OSError as exc:
        raise LibseccompMissing(f"libseccomp not found ({exc})") from exc
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    lib.seccomp_release.argtypes = [ctypes.c_void_p]
    lib.seccomp_arch_add.argtypes = [ctypes.c_void_p, ctypes.c_uint32]
    lib.seccomp_arch_native.restype = ctypes.c_uint32
    lib.seccomp_arch_resolve_name.restype = ctypes.c_uint32
    lib.seccomp_arch_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_syscall_resolve_name_arch.argtypes = [ctypes.c_uint32, ctypes.c_char_p]
    lib.seccomp_rule_add_array.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int,
                                           ctypes.c_uint, ctypes.POINTER(_ArgCmp)]
    lib.seccomp_attr_set.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_uint32]
    lib.seccomp_export_bpf.argtypes = [ctypes.c_void_p, ctypes.c_int]
    lib.seccomp_version.restype = ctypes.POINTER(_Version)
    return lib


def version() -> str:
    """libseccomp's version, e.g. ``2.5.4`` (part of a compiled filter's cache key)."""
    v = _lib().seccomp_version().contents
    return f"{v.major}.{v.minor}.{v.micro}"


def native_arch() -> int:
    """This process's architecture token (an AUDIT_ARCH_* value)."""
    return int(_lib().seccomp_arch_native())


def resolve_arch(name: str) -> int | None:
    """The token of a libseccomp architecture name (``x86_64``, ``x32``, ``aarch64``), or None."""
    token = _lib().seccomp_arch_resolve_name(name.encode())
    return int(token) or None


def syscall_number(arch: int, name: str) -> int | None:
    """The number of syscall ``name`` on ``arch``; None when libseccomp does not know it."""
    nr = _lib().seccomp_syscall_resolve_name_arch(arch, name.encode())
    return None if nr == _NR_SCMP_ERROR else int(nr)


def _check(result: int, what: str) -> None:
    if result < 0:
        raise OSError(-result, f"libseccomp: {what}: {os.strerror(-result)}")


class Compiler:
    """One filter being built: architectures and rules in, the BPF program out.

    Use as a context manager (the libseccomp context is released at the end).
    no_new_privs is left to the caller (the container sets it itself, before
    it loads the program).
    """

    def __init__(self, default_action: int, arches: tuple[int, ...] = ()) -> None:
        lib = _lib()
        self._lib = lib
        self._ctx = lib.seccomp_init(default_action)
        if not self._ctx:
            raise OSError(ctypes.get_errno() or 22, "libseccomp: seccomp_init failed")
        _check(lib.seccomp_attr_set(self._ctx, _ATTR_CTL_NNP, 0), "no_new_privs off")
        self._optimize()
        for arch in arches:
            result = lib.seccomp_arch_add(self._ctx, arch)
            if result != -17:  # EEXIST: the native one is in already
                _check(result, f"add architecture 0x{arch:x}")

    def _optimize(self) -> None:
        """A binary tree of syscall numbers (libseccomp 2.5+); older ones keep their order."""
        self._lib.seccomp_attr_set(self._ctx, _ATTR_CTL_OPTIMIZE, 2)

    def __enter__(self) -> Compiler:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def release(self) -> None:
        if self._ctx:
            self._lib.seccomp_release(self._ctx)
            self._ctx = None

    def add_rule(self, action: int, syscall: int,
                 args: tuple[tuple[int, int, int, int], ...] = ()) -> None:
        """One rule: ``action`` for ``syscall`` when every (index, op, value, value_two) holds."""
        array = (_ArgCmp * max(len(args), 1))(*(_ArgCmp(*a) for a in args))
        _check(self._lib.seccomp_rule_add_array(self._ctx, action, syscall, len(args), array),
               f"rule for syscall {syscall}")

    def export_bpf(self) -> bytes:
        """The program, as the kernel takes it: an array of struct sock_filter."""
        fd = os.memfd_create("seccomp-bpf", os.MFD_CLOEXEC)  # a pipe could fill up and block
        try:
            _check(self._lib.seccomp_export_bpf(self._ctx, fd), "export the BPF program")
            size = os.lseek(fd, 0, os.SEEK_END)
            return os.pread(fd, size, 0)
        finally:
            os.close(fd)
