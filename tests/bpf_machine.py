"""A classic BPF machine for seccomp programs, to test what a program decides.

It runs the instructions a seccomp filter may use (the kernel's
``seccomp_check_filter`` list, less the scratch memory nobody here emits)
over one ``struct seccomp_data``: the number, the audit architecture and
six 64-bit arguments, little-endian.
"""

from __future__ import annotations

import struct

_LD_ABS, _LDX_IMM, _LD_IMM = 0x20, 0x01, 0x00
_ALU_AND, _ALU_OR, _ALU_RSH, _ALU_LSH = 0x54, 0x44, 0x74, 0x64
_JA, _JEQ, _JGT, _JGE, _JSET = 0x05, 0x15, 0x25, 0x35, 0x45
_JEQ_X, _JGT_X, _JGE_X, _JSET_X = 0x1D, 0x2D, 0x3D, 0x4D
_RET, _TAX, _TXA = 0x06, 0x07, 0x87


def data(arch: int, nr: int, args: tuple[int, ...] = (0,) * 6) -> bytes:
    """struct seccomp_data for a syscall (the instruction pointer 0)."""
    args = tuple(args) + (0,) * (6 - len(args))
    return struct.pack("<IIQ6Q", nr & 0xFFFFFFFF, arch, 0, *(a & (2**64 - 1) for a in args))


def run(program: bytes, seccomp_data: bytes, loaded: set[int] | None = None) -> int:
    """The SECCOMP_RET_* value ``program`` returns for ``seccomp_data``; the offsets it
    read go into ``loaded``."""
    instructions = [struct.unpack_from("<HBBI", program, i) for i in range(0, len(program), 8)]
    a = x = pc = 0
    while True:
        code, jt, jf, k = instructions[pc]
        pc += 1
        if code == _LD_ABS:
            a = struct.unpack_from("<I", seccomp_data, k)[0]
            if loaded is not None:
                loaded.add(k)
        elif code == _LD_IMM:
            a = k
        elif code == _LDX_IMM:
            x = k
        elif code == _TAX:
            x = a
        elif code == _TXA:
            a = x
        elif code == _ALU_AND:
            a &= k
        elif code == _ALU_OR:
            a |= k
        elif code == _ALU_RSH:
            a >>= k
        elif code == _ALU_LSH:
            a = (a << k) & 0xFFFFFFFF
        elif code == _JA:
            pc += k
        elif code in (_JEQ, _JGT, _JGE, _JSET, _JEQ_X, _JGT_X, _JGE_X, _JSET_X):
            other = x if code & 0x08 else k
            base = code & ~0x08
            taken = {_JEQ: a == other, _JGT: a > other, _JGE: a >= other,
                     _JSET: bool(a & other)}[base]
            pc += jt if taken else jf
        elif code == _RET:
            return k
        else:
            raise ValueError(f"instruction {pc - 1}: opcode {code:#x} not in this machine")
