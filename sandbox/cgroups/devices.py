"""Which devices a container may open: one rule list, for both cgroup versions.

v1 writes the rules to the devices controller of the sandboxes' parent. v2 has no
devices controller: the kernel asks a BPF_PROG_TYPE_CGROUP_DEVICE program instead
(Documentation/admin-guide/cgroup-v2.rst, "Device controller"), so the rules are
compiled here into one, attached to the sandboxes' parent, whose children inherit
it. Without it, a container with CAP_MKNOD (Docker's default set) could make a node
for a host disk and read it.

The program sees ``struct bpf_cgroup_dev_ctx`` (access_type: access << 16 | type;
major; minor) and returns 1 to allow, 0 to deny; include/uapi/linux/bpf.h.
"""

from __future__ import annotations

import hashlib
import os
import struct

from ..errors import LimitError
from ..linux import bpf

#: The container's /dev, in the devices.allow form: type major:minor access.
DEVICE_RULES = (
    "c *:* m", "b *:* m",  # mknod is allowed, opening what it makes is not
    "c 1:3 rwm", "c 1:5 rwm", "c 1:7 rwm", "c 1:8 rwm", "c 1:9 rwm",  # null zero full random urandom
    "c 5:0 rwm", "c 5:2 rwm", "c 136:* rwm",  # tty ptmx pts/*
)

_TYPES = {"b": 1, "c": 2}  # BPF_DEVCG_DEV_BLOCK, BPF_DEVCG_DEV_CHAR
_ACCESS = {"m": 1, "r": 2, "w": 4}  # BPF_DEVCG_ACC_MKNOD, _READ, _WRITE

# eBPF opcodes (include/uapi/linux/bpf_common.h, bpf.h)
_LDX_W = 0x61     # dst = *(u32 *)(src + off)
_MOV_X = 0xbf     # dst = src (64-bit)
_MOV_K = 0xb7     # dst = imm
_AND_K = 0x57     # dst &= imm
_RSH_K = 0x77     # dst >>= imm
_JNE_K = 0x55     # if dst != imm: pc += off
_EXIT = 0x95
# registers: r1 the context; r2 access, r3 type, r4 major, r5 minor, r6 scratch, r0 verdict


def _insn(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    return struct.pack("<BBhi", code, (src << 4) | dst, off, imm)


def parse_rule(rule: str) -> tuple[int, int | None, int | None, int]:
    """``"c 1:3 rwm"`` as (type, major or None for *, minor or None, access bits)."""
    kind, numbers, access = rule.split()
    major, minor = numbers.split(":")
    return (_TYPES[kind], None if major == "*" else int(major),
            None if minor == "*" else int(minor), sum(_ACCESS[a] for a in access))


def _rule_block(rule: str) -> list[bytes]:
    """Allow (return 1) when the request matches the rule and asks no more than it allows;
    else fall through to the next rule."""
    kind, major, minor, allowed = parse_rule(rule)
    tests = [(3, kind)] + [(reg, v) for reg, v in ((4, major), (5, minor)) if v is not None]
    allow = [_insn(_MOV_X, 6, 2), _insn(_AND_K, 6, imm=~allowed & 0xFFFF),
             _insn(_JNE_K, 6, off=2, imm=0),  # asks more than allowed: skip the last two
             _insn(_MOV_K, 0, imm=1), _insn(_EXIT)]
    size = len(tests) + len(allow)
    # each test that fails jumps past the end of the block
    jumps = [_insn(_JNE_K, reg, off=size - i - 1, imm=value) for i, (reg, value) in enumerate(tests)]
    return jumps + allow


def device_program(rules: tuple[str, ...] = DEVICE_RULES) -> bytes:
    """The rules as a BPF_PROG_TYPE_CGROUP_DEVICE program: the first that allows wins,
    anything no rule allows is denied."""
    insns = [
        _insn(_LDX_W, 2, 1, 0),          # r2 = ctx->access_type
        _insn(_MOV_X, 3, 2),             # r3 = r2 & 0xffff: the type
        _insn(_AND_K, 3, imm=0xFFFF),
        _insn(_RSH_K, 2, imm=16),        # r2 >>= 16: the access
        _insn(_LDX_W, 4, 1, 4),          # r4 = ctx->major
        _insn(_LDX_W, 5, 1, 8),          # r5 = ctx->minor
    ]
    for rule in rules:
        insns += _rule_block(rule)
    insns += [_insn(_MOV_K, 0, imm=0), _insn(_EXIT)]
    return b"".join(insns)


def program_name(rules: tuple[str, ...] = DEVICE_RULES) -> str:
    """The name the program is loaded with: says whose it is and which rules it holds,
    so a parent set up by another version is recognised (15 characters at most)."""
    return "sbx_dev_" + hashlib.sha256("\n".join(rules).encode()).hexdigest()[:7]


class DeviceFilter:
    """The rules' program on a cgroup v2 directory, through bpf(2).

    Attached without BPF_F_ALLOW_MULTI: the directory has this one program (a new
    attach replaces an older version's atomically), its children cannot attach their
    own, and programs that an ancestor attached with ALLOW_MULTI (systemd's) still
    run too: a device must pass all of them.
    """

    def __init__(self, rules: tuple[str, ...] = DEVICE_RULES) -> None:
        self.rules = rules

    def attach(self, cgroup_dir: str) -> None:
        """Load the program and attach it to ``cgroup_dir``."""
        try:
            fd = bpf.prog_load(bpf.PROG_TYPE_CGROUP_DEVICE, device_program(self.rules),
                               program_name(self.rules))
            try:
                bpf.prog_attach(cgroup_dir, fd, bpf.ATTACH_CGROUP_DEVICE)
            finally:
                os.close(fd)
        except OSError as exc:
            raise LimitError(f"cannot restrict the sandboxes' devices: {exc.strerror}",
                             hint="cgroup v2 controls devices with eBPF: a kernel with "
                                  "CONFIG_CGROUP_BPF, and bpf(2) allowed to root") from exc

    def attached(self, cgroup_dir: str) -> bool:
        """True when the rules' program is the one attached to ``cgroup_dir``."""
        try:
            names = bpf.attached_prog_names(cgroup_dir, bpf.ATTACH_CGROUP_DEVICE)
        except OSError:
            return False
        return names == [program_name(self.rules)]


def load_check() -> str | None:
    """None when this kernel loads the device program, else why not (for `sandbox doctor`)."""
    try:
        os.close(bpf.prog_load(bpf.PROG_TYPE_CGROUP_DEVICE, device_program(), program_name()))
    except OSError as exc:
        return exc.strerror or str(exc)
    return None
