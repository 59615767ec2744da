"""bpf(2), for the one kind of program the engine loads: a cgroup device filter.

cgroup v2 has no devices controller; the kernel asks the BPF_PROG_TYPE_CGROUP_DEVICE
programs attached to a task's cgroup and its ancestors instead. This module loads
such a program, attaches it to a cgroup directory, and finds which programs are
attached, by name. The layouts of ``union bpf_attr`` and ``struct bpf_prog_info``
are the kernel's UAPI (include/uapi/linux/bpf.h); each call passes only the
leading fields it uses, which the kernel accepts from older callers.
"""

from __future__ import annotations

import ctypes
import os
import struct

__all__ = [
    "ATTACH_CGROUP_DEVICE",
    "PROG_TYPE_CGROUP_DEVICE",
    "attached_prog_names",
    "prog_attach",
    "prog_load",
]

_SYS_BPF = {"x86_64": 321, "aarch64": 280, "riscv64": 280}.get(os.uname().machine, 321)

_PROG_LOAD, _PROG_ATTACH, _PROG_GET_FD_BY_ID, _OBJ_GET_INFO_BY_FD, _PROG_QUERY = 5, 8, 13, 15, 16
PROG_TYPE_CGROUP_DEVICE = 15
ATTACH_CGROUP_DEVICE = 6
_NAME_LEN = 16  # BPF_OBJ_NAME_LEN, with the terminating NUL
_INFO_NAME_OFFSET = 64  # struct bpf_prog_info: name follows ten fields
_LOG_SIZE = 1 << 16

_libc = ctypes.CDLL(None, use_errno=True)
_bpf = ctypes.CFUNCTYPE(ctypes.c_long, ctypes.c_long, ctypes.c_int, ctypes.c_char_p,
                        ctypes.c_uint, use_errno=True)(("syscall", _libc))


def _call(cmd: int, attr: ctypes.Array, what: str) -> int:
    """bpf(cmd, attr); OSError naming ``what`` on failure."""
    result = _bpf(_SYS_BPF, cmd, attr, len(attr))
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return result


def prog_load(prog_type: int, insns: bytes, name: str, license: str = "MIT") -> int:
    """BPF_PROG_LOAD: the verified program's fd (close-on-exec). On a refusal the
    error carries the first lines of the verifier's log."""
    code = ctypes.create_string_buffer(insns, len(insns))
    lic = ctypes.create_string_buffer(license.encode())
    raw_name = name.encode()[:_NAME_LEN - 1]

    def attempt(log: ctypes.Array | None) -> int:
        attr = ctypes.create_string_buffer(72)
        struct.pack_into("<IIQQIIQII16s", attr, 0, prog_type, len(insns) // 8,
                         ctypes.addressof(code), ctypes.addressof(lic), 1 if log else 0,
                         len(log) if log else 0, ctypes.addressof(log) if log else 0, 0, 0,
                         raw_name)
        return _call(_PROG_LOAD, attr, f"loading the bpf program {name}")

    try:
        return attempt(None)
    except OSError as exc:
        log = ctypes.create_string_buffer(_LOG_SIZE)
        try:
            return attempt(log)
        except OSError:
            detail = log.value.decode(errors="replace").strip().splitlines()[-3:]
            raise OSError(exc.errno, f"{exc.strerror}{': ' if detail else ''}{' | '.join(detail)}") \
                from None


def prog_attach(cgroup_dir: str, prog_fd: int, attach_type: int, flags: int = 0) -> None:
    """BPF_PROG_ATTACH to a cgroup directory. Without flags the cgroup has one program
    of the type, which a new attach replaces atomically."""
    fd = os.open(cgroup_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        attr = ctypes.create_string_buffer(struct.pack("<IIIII", fd, prog_fd, attach_type, flags, 0))
        _call(_PROG_ATTACH, attr, f"attaching a bpf program to {cgroup_dir}")
    finally:
        os.close(fd)


def attached_prog_names(cgroup_dir: str, attach_type: int) -> list[str]:
    """The names of the programs attached to the cgroup itself (not its ancestors)."""
    fd = os.open(cgroup_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        ids = (ctypes.c_uint32 * 64)()
        attr = ctypes.create_string_buffer(32)
        struct.pack_into("<IIIIQI", attr, 0, fd, attach_type, 0, 0, ctypes.addressof(ids), len(ids))
        _call(_PROG_QUERY, attr, f"listing the bpf programs of {cgroup_dir}")
        count = struct.unpack_from("<I", attr, 24)[0]
    finally:
        os.close(fd)
    return [_prog_name(prog_id) for prog_id in ids[:count]]


def _prog_name(prog_id: int) -> str:
    attr = ctypes.create_string_buffer(struct.pack("<III", prog_id, 0, 0))
    fd = _call(_PROG_GET_FD_BY_ID, attr, f"opening bpf program {prog_id}")
    try:
        info = ctypes.create_string_buffer(_INFO_NAME_OFFSET + _NAME_LEN)
        attr = ctypes.create_string_buffer(struct.pack("<IIQ", fd, len(info), ctypes.addressof(info)))
        _call(_OBJ_GET_INFO_BY_FD, attr, f"reading bpf program {prog_id}")
    finally:
        os.close(fd)
    return info.raw[_INFO_NAME_OFFSET:].split(b"\0", 1)[0].decode(errors="replace")
