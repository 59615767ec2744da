"""What a resolved seccomp profile decides for one syscall, read straight off its rules.

The oracle the assembled program is held to where libseccomp's program is not
one: libseccomp 2.5 merges the rules of one syscall into a tree that can
misjudge two rules comparing one 64-bit argument with ranges (it compares the
low word with the high word's value). Names resolve through libseccomp's
tables, as the engine's do; the architectures follow the kernel: x32's
syscalls arrive as x86_64's numbered from X32_SYSCALL_BIT, a 32-bit
architecture's arguments are compared on their low word, and a syscall of an
architecture the filter does not name is killed.
"""

from __future__ import annotations

from functools import cache

from sandbox.linux import libseccomp
from sandbox.security import filters
from sandbox.security.assembler import _X86_DIRECT, AUDIT_ARCH_X86_64, TOKEN_X32, TOKEN_X86
from sandbox.security.profile import Arg, Resolved

KILL_THREAD = libseccomp.ACT_KILL_THREAD
WORD = 0xFFFFFFFF


@cache
def tokens(resolved: Resolved) -> tuple[int, ...]:
    return tuple(dict.fromkeys((libseccomp.native_arch(), *filters._arch_tokens(resolved))))


def decide(resolved: Resolved, audit_arch: int, nr: int, args: tuple[int, ...]) -> int | None:
    """The SECCOMP_RET_* value for this call; None when rules of two actions match."""
    named = tokens(resolved)
    if audit_arch == AUDIT_ARCH_X86_64 and WORD > nr >= 0x40000000:
        token = TOKEN_X32 if TOKEN_X32 in named else None
    else:
        token = audit_arch if audit_arch in named else None
    if token is None:
        return KILL_THREAD
    wide = bool(token & 0x80000000) and token != TOKEN_X32
    default = filters.action_value(resolved.default_action, resolved.default_errno)
    matched = set()
    for rule in resolved.rules:
        action = filters.action_value(rule.action, rule.errno)
        if action == default:
            continue
        if not any(_number(token, name) == nr for name in rule.names):
            continue
        positions = [a.position for a in rule.args]
        split = len(set(positions)) != len(positions)  # runc: one rule per condition
        alternatives = [(a,) for a in rule.args] if split else [rule.args]
        if any(all(_holds(a, args, wide) for a in alternative) for alternative in alternatives):
            matched.add(action)
    if len(matched) > 1:
        return None
    return matched.pop() if matched else default


@cache
def _number(token: int, name: str) -> int | None:
    nr = libseccomp.syscall_number(token, name)
    if nr is None or nr <= -10000:
        return None
    if nr < 0:
        return _X86_DIRECT.get(nr) if token == TOKEN_X86 else None
    return nr & WORD


def _holds(arg: Arg, args: tuple[int, ...], wide: bool) -> bool:
    mask = (1 << 64) - 1 if wide else WORD
    value, one, two = args[arg.position] & mask, arg.value & mask, arg.value_two & mask
    return {"SCMP_CMP_EQ": value == one, "SCMP_CMP_NE": value != one,
            "SCMP_CMP_LT": value < one, "SCMP_CMP_LE": value <= one,
            "SCMP_CMP_GT": value > one, "SCMP_CMP_GE": value >= one,
            "SCMP_CMP_MASKED_EQ": value & one == two & one}[arg.op]
