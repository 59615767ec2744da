"""A resolved seccomp profile as a short BPF program, assembled here rather than by libseccomp.

The kernel checks, converts and JIT-compiles a sandbox's program each time the
sandbox loads it, in time that grows with the program's length, so every
sandbox's start pays for that length. libseccomp compares the syscall number
with each number the profile names, one instruction apiece. Profiles allow or
deny runs of neighbouring numbers, so this module compares with the edges of
those runs instead: a binary search over the intervals of numbers that share
one outcome, then the argument checks of the few syscalls that have them. It
decides as the profile says, and as libseccomp's program does for every syscall
number and for arguments around every value a rule compares
(tests/test_seccomp_assembler.py runs both in a BPF machine), with one known
difference: libseccomp 2.5 misjudges two rules that compare one 64-bit argument
with ranges, and this program does not. A masked comparison masks the value too,
as libseccomp does. libseccomp still resolves the names to numbers.

``assemble`` returns None for what it leaves to libseccomp: a syscall with rules
of two different actions, a big-endian architecture, a syscall that x86
multiplexes (socketcall(2), ipc(2)) with an outcome of its own or one another
architecture multiplexes at all, or a conditional jump with no place for a step
on the way. Docker's default profile is assembled on x86_64 (with x86 and x32)
and aarch64 (with arm), ``nested`` on x86_64.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import NamedTuple

from ..linux.libseccomp import ACT_KILL_THREAD
from .profile import Arg, Resolved, Rule

__all__ = ["assemble"]

# struct seccomp_data: the syscall number, the audit architecture, the instruction
# pointer, six 64-bit arguments (native byte order: little-endian here, low word first).
_NR, _ARCH = 0, 4


def _arg_low(index: int) -> int:
    return 16 + 8 * index


def _arg_high(index: int) -> int:
    return 20 + 8 * index


# classic BPF opcodes (linux/bpf_common.h)
_LD_ABS = 0x20  # BPF_LD | BPF_W | BPF_ABS
_AND = 0x54  # BPF_ALU | BPF_AND | BPF_K
_JA = 0x05
_JEQ, _JGT, _JGE = 0x15, 0x25, 0x35
_RET = 0x06
_MAX_JUMP = 255

#: libseccomp's architecture tokens are the kernel's AUDIT_ARCH_* values, but for x32.
AUDIT_ARCH_X86_64 = 0xC000003E
TOKEN_X32 = 0x4000003E  # its syscalls reach the filter as x86_64's, numbered from X32_SYSCALL_BIT
TOKEN_X86 = 0x40000003
_X32_SYSCALL_BIT = 0x40000000
_ARCH_64BIT = 0x80000000
_ARCH_LE = 0x40000000
#: What a syscall of an architecture the filter does not name gets (libseccomp's default).
_BAD_ARCH = ACT_KILL_THREAD
#: libseccomp numbers a syscall that x86 multiplexes -100 - its socketcall(2) call or
#: -200 - its ipc(2) call (linux/net.h, linux/ipc.h); since Linux 4.3 (socket) and 5.1
#: (ipc) most have a number of their own too (arch/x86/entry/syscalls/syscall_32.tbl),
#: which libseccomp's rules also name. accept, send, recv, semop and semtimedop have none.
_X86_SOCKETCALL, _X86_IPC = 102, 117
_X86_DIRECT = {
    -101: 359, -102: 361, -103: 362, -104: 363, -106: 367, -107: 368, -108: 360, -111: 369,
    -112: 371, -113: 373, -114: 366, -115: 365, -116: 370, -117: 372, -118: 364, -119: 337,
    -120: 345,
    -202: 393, -203: 394, -211: 400, -212: 401, -213: 399, -214: 402, -221: 397, -222: 398,
    -223: 395, -224: 396,
}


class Cond(NamedTuple):
    """One argument condition, as the program compares it."""

    position: int
    op: str
    value: int
    value_two: int
    wide: bool  # 64-bit: both words compared; else the low word only


class Outcome(NamedTuple):
    """What one syscall number gets: ``action`` when any alternative holds (all of its
    conditions), else the default. One empty alternative: always ``action``."""

    action: int
    alternatives: tuple[tuple[Cond, ...], ...]

    @property
    def unconditional(self) -> bool:
        return () in self.alternatives


class _Unsupported(Exception):
    """The profile needs something only libseccomp builds."""


def assemble(resolved: Resolved, arches: tuple[int, ...], default: int,
             action_of: Callable[[Rule], int],
             number_of: Callable[[int, str], int | None]) -> bytes | None:
    """The program of ``resolved`` for architecture tokens ``arches`` (the native
    one first), or None to leave it to libseccomp.

    ``action_of`` gives a rule's SECCOMP_RET_* value, ``number_of`` a syscall's
    number on an architecture (libseccomp's tables: None when unknown).
    """
    try:
        sections = _sections(resolved, arches, default, action_of, number_of)
        return _Program(default).emit(sections)
    except _Unsupported:
        return None


class _Section(NamedTuple):
    """The part of the program for one audit architecture (x86_64's holds x32's too)."""

    audit_arch: int
    outcomes: dict[int, Outcome]  # by syscall number, unsigned 32-bit
    bad_from: int | None  # numbers from here on are another ABI's, not in the filter


def _sections(resolved: Resolved, arches: tuple[int, ...], default: int,
              action_of: Callable[[Rule], int],
              number_of: Callable[[int, str], int | None]) -> list[_Section]:
    """One section per audit architecture: x32 joins x86_64's, as the kernel reports it."""
    sections: dict[int, _Section] = {}
    for token in dict.fromkeys(arches):
        if token & _ARCH_LE == 0:
            raise _Unsupported("big-endian")
        audit = AUDIT_ARCH_X86_64 if token == TOKEN_X32 else token
        section = sections.setdefault(audit, _Section(audit, {}, None))
        outcomes = _outcomes(resolved, token, default, action_of, number_of)
        for nr, outcome in outcomes.items():
            if nr in section.outcomes:
                raise _Unsupported("one number in two architectures")
            section.outcomes[nr] = outcome
    if AUDIT_ARCH_X86_64 in sections:
        x32 = TOKEN_X32 in arches
        sections[AUDIT_ARCH_X86_64] = sections[AUDIT_ARCH_X86_64]._replace(
            bad_from=None if x32 else _X32_SYSCALL_BIT)
    return list(sections.values())


def _outcomes(resolved: Resolved, token: int, default: int, action_of: Callable[[Rule], int],
              number_of: Callable[[int, str], int | None]) -> dict[int, Outcome]:
    """What each syscall number of one architecture gets, merged from the rules as
    libseccomp merges them."""
    wide = bool(token & _ARCH_64BIT) and token != TOKEN_X32
    by_number: dict[int, list[tuple[int, tuple[Cond, ...]]]] = {}
    multiplexed: dict[int, set[int]] = {}
    multiplexes = (number_of(token, "socketcall") or -1) >= 0
    for rule in resolved.rules:
        action = action_of(rule)
        if action == default:
            continue  # libseccomp refuses such a rule; runc leaves it out
        alternatives = _alternatives(rule.args, wide)
        for name in rule.names:
            nr = number_of(token, name)
            if nr is None or nr <= -10000:
                continue  # unknown here, or not a syscall of this architecture
            if nr < 0:  # a member of the socketcall(2) or ipc(2) families
                if not multiplexes:
                    continue  # this architecture has each as a syscall of its own
                if token != TOKEN_X86:
                    raise _Unsupported("multiplexed syscall")
                multiplexed.setdefault(_X86_SOCKETCALL if nr > -200 else _X86_IPC, set()).add(action)
                nr = _X86_DIRECT.get(nr, -1)
                if nr < 0:
                    continue
            for alternative in alternatives:
                by_number.setdefault(nr, []).append((action, alternative))
    outcomes = {nr: _merged(found) for nr, found in by_number.items()}
    for mux, actions in multiplexed.items():  # socketcall(2) or ipc(2) decides for its members
        outcome = outcomes.get(mux)
        if outcome is None or not outcome.unconditional or actions != {outcome.action}:
            raise _Unsupported("a multiplexed call with an outcome of its own")
    return outcomes


def _alternatives(args: tuple[Arg, ...], wide: bool) -> tuple[tuple[Cond, ...], ...]:
    """A rule's conditions as alternatives: one (all of them), or one per condition
    when two name the same argument (as runc splits them for libseccomp)."""
    conds = tuple(Cond(a.position, a.op, a.value, a.value_two, wide) for a in args)
    positions = [c.position for c in conds]
    if len(set(positions)) != len(positions):
        return tuple((c,) for c in conds)
    return (conds,)


def _merged(found: list[tuple[int, tuple[Cond, ...]]]) -> Outcome:
    actions = {action for action, _ in found}
    if len(actions) != 1:
        raise _Unsupported("two actions for one syscall")
    alternatives = tuple(dict.fromkeys(alternative for _, alternative in found))
    if () in alternatives:
        alternatives = ((),)
    return Outcome(actions.pop(), alternatives)


class _Instruction(NamedTuple):
    code: int
    k: int
    true: str | None = None  # labels; None: the next instruction
    false: str | None = None


class _Program:
    """Instructions with symbolic jump targets; ``emit`` lays them out and resolves them."""

    def __init__(self, default: int) -> None:
        self.default = default
        self.code: list[_Instruction | str] = []  # a str marks where a label is
        self.returns: dict[int, str] = {}
        self.count = 0

    def label(self, prefix: str) -> str:
        self.count += 1
        return f"{prefix}{self.count}"

    def ret(self, action: int) -> str:
        """The label of the section's ``return action``, at its end."""
        if action not in self.returns:
            self.returns[action] = self.label(f"ret{action:#x}_")
        return self.returns[action]

    def add(self, code: int, k: int, true: str | None = None, false: str | None = None) -> None:
        self.code.append(_Instruction(code, k, true, false))

    def emit(self, sections: list[_Section]) -> bytes:
        labels = [self.label("arch") for _ in sections]
        self.add(_LD_ABS, _ARCH)
        for section, label in zip(sections, labels):
            self.add(_JEQ, section.audit_arch, label, None)
        self.add(_RET, _BAD_ARCH)
        for section, label in zip(sections, labels):
            self.code.append(label)
            self._section(section)
            for action, ret in self.returns.items():  # each section's own: jumps stay short
                self.code.append(ret)
                self.add(_RET, action)
            self.returns = {}
        return self._resolved()

    def _section(self, section: _Section) -> None:
        """Load the number, then a binary search over intervals of numbers with one outcome."""
        self.add(_LD_ABS, _NR)
        intervals = _intervals(section, self.default)
        targets = [target if isinstance(target, Outcome) else self.ret(target)
                   for _, target in intervals]
        root = self._search([start for start, _ in intervals], targets, 0, len(intervals))
        if len(intervals) == 1:  # no search: straight to the one outcome
            self.add(_JA, 0, root)

    def _search(self, starts: list[int], targets: list[str | Outcome], low: int, high: int) -> str:
        """Emit the tree that finds which of intervals ``low``..``high`` holds the number;
        its label (a leaf is its interval's target)."""
        if high - low == 1:
            target = targets[low]
            if isinstance(target, Outcome):  # its conditions, right here: jumps stay short
                label = self.label("cond")
                self.code.append(label)
                self._conditions(target)
                return label
            return target
        label = self.label("node")
        middle = (low + high) // 2
        self.code.append(label)
        index = len(self.code)
        self.code.append(_Instruction(_JGE, starts[middle]))  # targets filled in below
        below = self._search(starts, targets, low, middle)
        above = self._search(starts, targets, middle, high)
        self.code[index] = _Instruction(_JGE, starts[middle], above, below)
        return label

    def _conditions(self, outcome: Outcome) -> None:
        """Each alternative in turn: all its conditions hold -> the action; else the next."""
        done = self.ret(outcome.action)
        for i, alternative in enumerate(outcome.alternatives):
            last = i == len(outcome.alternatives) - 1
            fail = self.ret(self.default) if last else self.label("alt")
            for j, cond in enumerate(alternative):
                passed = done if j == len(alternative) - 1 else self.label("and")
                self._condition(cond, passed, fail)
                if passed != done:
                    self.code.append(passed)
            if not last:
                self.code.append(fail)

    def _condition(self, cond: Cond, passed: str, fail: str) -> None:
        """Jump to ``passed`` if the condition holds, else to ``fail``."""
        value, two, op = cond.value, cond.value_two, cond.op
        if op == "SCMP_CMP_MASKED_EQ":
            # libseccomp compares with the datum masked too: (arg & mask) == (datum & mask)
            words = [(value >> 32, two >> 32, _arg_high(cond.position))] if cond.wide else []
            words.append((value & 0xFFFFFFFF, two & 0xFFFFFFFF, _arg_low(cond.position)))
            for n, (mask, datum, offset) in enumerate(words):
                self.add(_LD_ABS, offset)
                self.add(_AND, mask)
                self.add(_JEQ, datum & mask, passed if n == len(words) - 1 else None, fail)
            return
        high, low = value >> 32, value & 0xFFFFFFFF
        if op in ("SCMP_CMP_EQ", "SCMP_CMP_NE"):
            hit, miss = (passed, fail) if op == "SCMP_CMP_EQ" else (fail, passed)
            if cond.wide:
                self.add(_LD_ABS, _arg_high(cond.position))
                self.add(_JEQ, high, None, miss)
            self.add(_LD_ABS, _arg_low(cond.position))
            self.add(_JEQ, low, hit, miss)
            return
        # GT/GE hold when the high word is greater, or equal with the low word GT/GE;
        # LT and LE are their negations (GE and GT with the targets swapped).
        jump = {"SCMP_CMP_GT": _JGT, "SCMP_CMP_GE": _JGE, "SCMP_CMP_LT": _JGE,
                "SCMP_CMP_LE": _JGT}[op]
        hit, miss = (passed, fail) if op in ("SCMP_CMP_GT", "SCMP_CMP_GE") else (fail, passed)
        if cond.wide:
            self.add(_LD_ABS, _arg_high(cond.position))
            self.add(_JGT, high, hit, None)
            self.add(_JEQ, high, None, miss)
        self.add(_LD_ABS, _arg_low(cond.position))
        self.add(jump, low, hit, miss)

    def _resolved(self) -> bytes:
        """The instructions, packed, each jump an offset. A conditional jump further than
        BPF's 255 instructions goes through an unconditional one (``_trampoline``)."""
        while True:
            pcs, where = self._layout()
            far = next(((i, field) for i, item in enumerate(self.code)
                        if isinstance(item, _Instruction) and item.code != _JA
                        for field in ("true", "false")
                        if (label := getattr(item, field)) is not None
                        and where[label] - pcs[i] - 1 > _MAX_JUMP), None)
            if far is None:
                break
            self._trampoline(*far, pcs)
        out = bytearray()
        for pc, item in enumerate(i for i in self.code if isinstance(i, _Instruction)):
            jt, jf = (0 if label is None else where[label] - pc - 1
                      for label in (item.true, item.false))
            if min(jt, jf) < 0:
                raise _Unsupported("a jump backwards")  # not made by construction
            if item.code == _JA:
                out += struct.pack("<HBBI", item.code, 0, 0, jt)
            else:
                out += struct.pack("<HBBI", item.code, jt, jf, item.k)
        return bytes(out)

    def _layout(self) -> tuple[list[int], dict[str, int]]:
        """The pc of each item (a label: of the instruction it marks), and of each label."""
        pcs: list[int] = []
        where: dict[str, int] = {}
        pc = 0
        for item in self.code:
            pcs.append(pc)
            if isinstance(item, str):
                where[item] = pc
            else:
                pc += 1
        return pcs, where

    def _trampoline(self, index: int, field: str, pcs: list[int]) -> None:
        """Send the jump at item ``index`` through a new ``ja`` within its reach, at the
        last place in reach where the instruction before cannot fall through to it."""
        jump = self.code[index]
        assert isinstance(jump, _Instruction)
        reach = pcs[index] + 1 + _MAX_JUMP
        place = None
        previous: _Instruction | None = None
        for i in range(index + 1, len(self.code)):
            item = self.code[i]
            if isinstance(item, str):
                continue
            if pcs[i] > reach:
                break
            if previous is not None and _ends_flow(previous):
                place = i
            previous = item
        if place is None:
            raise _Unsupported("a jump longer than BPF's, with no place for a step between")
        while isinstance(self.code[place - 1], str):
            place -= 1  # before the labels of the instruction that was there
        label = self.label("far")
        self.code[place:place] = [label, _Instruction(_JA, 0, getattr(jump, field))]
        self.code[index] = jump._replace(true=label) if field == "true" else jump._replace(false=label)


def _ends_flow(instruction: _Instruction) -> bool:
    """Whether the instruction never goes on to the next one by falling through."""
    if instruction.code in (_RET, _JA):
        return True
    return instruction.true is not None and instruction.false is not None


def _intervals(section: _Section, default: int) -> list[tuple[int, Outcome | int]]:
    """(first number, what it gets) of each run of consecutive numbers with one outcome,
    from 0 on: an action (an int), or an Outcome with conditions to check."""
    out: list[tuple[int, Outcome | int]] = []

    def add(start: int, target: Outcome | int) -> None:
        if out and out[-1][0] == start:
            out.pop()  # a number's own outcome replaces the default opened there
        if out and isinstance(target, int) and out[-1][1] == target:
            return  # the run before goes on
        out.append((start, target))

    add(0, default)
    for nr, outcome in sorted((nr & 0xFFFFFFFF, o) for nr, o in section.outcomes.items()):
        if section.bad_from is not None and nr >= section.bad_from:
            continue
        add(nr, outcome.action if outcome.unconditional else outcome)
        if nr < 0xFFFFFFFF:
            add(nr + 1, default)
    if section.bad_from is not None:
        add(section.bad_from, _BAD_ARCH)
        add(0xFFFFFFFF, default)  # -1, a syscall a tracer skipped, stays this architecture's
    return out
