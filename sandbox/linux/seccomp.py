"""seccomp(2): load a finished BPF program into this process (and what it execs).

The program was compiled by the owner (``libseccomp``, ``sandbox.security``);
loading it is one syscall, with no library loaded in the container's
process. The kernel requires no_new_privs (or CAP_SYS_ADMIN) first. Man
page: seccomp(2).
"""

from __future__ import annotations

import ctypes
import os

__all__ = ["FILTER_FLAGS", "load_filter"]

_SYS_SECCOMP = {"x86_64": 317, "aarch64": 277, "riscv64": 277}.get(os.uname().machine, 317)
_SECCOMP_SET_MODE_FILTER = 1
#: The filter flags a profile may name (linux/seccomp.h).
FILTER_FLAGS = {
    "SECCOMP_FILTER_FLAG_TSYNC": 1,
    "SECCOMP_FILTER_FLAG_LOG": 2,
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW": 4,
    "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV": 32,
}
#: struct sock_filter: u16 code, u8 jt, u8 jf, u32 k.
INSTRUCTION_SIZE = 8


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_char_p)]


#: Made at import, not in the freshly forked process that loads the program.
_seccomp = ctypes.CFUNCTYPE(ctypes.c_long, ctypes.c_long, ctypes.c_uint, ctypes.c_uint,
                            ctypes.POINTER(_SockFprog), use_errno=True)(
    ("syscall", ctypes.CDLL(None, use_errno=True)))


def load_filter(program: bytes, flags: int = 0) -> None:
    """Install ``program`` (struct sock_filter[]) as this process's seccomp filter."""
    count = len(program) // INSTRUCTION_SIZE
    if count == 0 or count > 0xFFFF or len(program) % INSTRUCTION_SIZE:
        raise OSError(22, f"not a seccomp program ({len(program)} bytes)")
    prog = _SockFprog(count, program)
    if _seccomp(_SYS_SECCOMP, _SECCOMP_SET_MODE_FILTER, flags, ctypes.byref(prog)) < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"seccomp: {os.strerror(err)}")
