"""The assembled seccomp program decides as the profile says, as libseccomp's does, in a
fraction of its length.

``sandbox.security.assembler`` writes a profile's program itself (a binary
search over runs of syscall numbers). Both programs run in a BPF machine
(tests/bpf_machine.py) for every syscall number up to past the highest any
architecture has, for x32's numbers, on each architecture the filter names and
on one it does not, and, where a program reads arguments, for arguments on and
around every value the rules compare with. For Docker's default profile, the
nested one and hand-made ones, the two programs decide alike everywhere. Random
profiles are held to a reading of the rules themselves (tests/seccomp_model.py),
because libseccomp 2.5 misjudges some: two rules that compare one 64-bit argument
with ranges. No root needed.
"""

from __future__ import annotations

import itertools
import json
import random

import pytest

from sandbox.linux.caps import mask
from sandbox.security import filters, profile
from sandbox.spec import DEFAULT_CAPABILITIES

from . import bpf_machine, seccomp_model

X86_64, X86, AARCH64, ARM, UNKNOWN = 0xC000003E, 0x40000003, 0xC00000B7, 0x40000028, 0x12345678
NUMBERS = [*range(1100), *(0x40000000 + n for n in range(1100)),
           *range(0xF0000, 0xF0010),  # arm's own (cacheflush, set_tls, ...)
           0x3FFFFFFF, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF]
ARG_OFFSETS = range(16, 64)
WORD = 2**64 - 1


def around(resolved: profile.Resolved) -> dict[int, set[int]]:
    """Per argument: values on and beside what the rules compare with, in both words."""
    values: dict[int, set[int]] = {}
    for rule in resolved.rules:
        for arg in rule.args:
            found = values.setdefault(arg.position, {0, WORD, 0xFFFFFFFF, 1 << 32})
            for v in (arg.value, arg.value_two, arg.value & arg.value_two):
                for near in (v - 1, v, v + 1, v | 1 << 32, v + (1 << 32), v ^ 0xFFFFFFFF,
                             v & 0xFFFFFFFF, v | 0xFFFFFFFF00000000):
                    found.add(near & WORD)
    return values


def argument_sets(resolved: profile.Resolved) -> list[tuple[int, ...]]:
    """One argument varied at a time, and both of each pair one rule compares."""
    values = around(resolved)
    out = []
    for index, found in values.items():
        out += [tuple(v if i == index else 0 for i in range(6)) for v in found]
    pairs = {tuple(sorted({a.position for a in rule.args}))
             for rule in resolved.rules if len({a.position for a in rule.args}) > 1}
    for pair in pairs:
        for first, second in itertools.combinations(pair, 2):
            for v, w in itertools.product(values[first], values[second]):
                args = [0] * 6
                args[first], args[second] = v, w
                out.append(tuple(args))
    return out


def assert_same_decisions(resolved: profile.Resolved, arches=(X86_64, X86, AARCH64, ARM, UNKNOWN)):
    ours = filters.compile_program(resolved)
    reference = filters.libseccomp_program(resolved)
    assert ours != reference, "the profile was left to libseccomp"
    argument_cases = argument_sets(resolved)
    checked = 0
    for arch, nr in itertools.product(arches, NUMBERS):
        loaded: set[int] = set()
        plain = bpf_machine.data(arch, nr)
        assert bpf_machine.run(ours, plain, loaded) == bpf_machine.run(reference, plain, loaded), \
            (hex(arch), hex(nr))
        if loaded & set(ARG_OFFSETS):
            for args in argument_cases:
                call = bpf_machine.data(arch, nr, args)
                assert bpf_machine.run(ours, call) == bpf_machine.run(reference, call), \
                    (hex(arch), hex(nr), [hex(a) for a in args])
                checked += 1
    return ours, reference, checked


def resolved_default(caps: int) -> profile.Resolved:
    return profile.resolve(profile.load("default"), filters.capability_names(caps))


@pytest.mark.parametrize("caps", [mask(DEFAULT_CAPABILITIES), 0, (1 << 41) - 1],
                         ids=["docker-capabilities", "none", "all"])
def test_docker_s_default_profile_decides_as_libseccomp_s_program(caps):
    ours, reference, checked = assert_same_decisions(resolved_default(caps))
    assert checked > 0  # the argument rules (clone, socket, personality) were exercised
    assert len(ours) * 3 < len(reference)


def test_the_nested_profile_decides_as_libseccomp_s_program():
    resolved = profile.resolve(profile.load(profile.NESTED), filters.capability_names(
        mask(DEFAULT_CAPABILITIES)))
    assert_same_decisions(resolved)


def profile_file(tmp_path, data: dict) -> str:
    path = tmp_path / "profile.json"
    path.write_text(json.dumps(data))
    return str(path)


def rule(names, action, *args, errno=None):
    out = {"names": names, "action": action,
           "args": [{"index": i, "value": v, "valueTwo": two, "op": op} for i, v, two, op in args]}
    if errno is not None:
        out["errnoRet"] = errno
    return out


def test_every_comparison_on_both_words_and_every_action(tmp_path):
    """Each operator, values past 32 bits, two arguments in one rule, and every action."""
    big = (1 << 40) + 7
    data = {"defaultAction": "SCMP_ACT_ALLOW", "architectures": [
        "SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"], "syscalls": [
        rule(["read"], "SCMP_ACT_ERRNO", (0, 5, 0, "SCMP_CMP_EQ"), errno=13),
        rule(["write"], "SCMP_ACT_ERRNO", (2, big, 0, "SCMP_CMP_NE")),
        rule(["openat"], "SCMP_ACT_TRAP", (1, big, 0, "SCMP_CMP_LT")),
        rule(["close"], "SCMP_ACT_KILL_PROCESS", (0, big, 0, "SCMP_CMP_LE")),
        rule(["dup"], "SCMP_ACT_LOG", (0, big, 0, "SCMP_CMP_GE")),
        rule(["dup2"], "SCMP_ACT_TRACE", (0, 9, 0, "SCMP_CMP_GT"), errno=3),
        rule(["ioctl"], "SCMP_ACT_ERRNO", (1, 0xFF00_0000_FF00, 0x1200_0000_3400, "SCMP_CMP_MASKED_EQ")),
        rule(["mmap"], "SCMP_ACT_ERRNO", (0, 4096, 0, "SCMP_CMP_EQ"), (3, 0x22, 0, "SCMP_CMP_EQ")),
        rule(["mmap"], "SCMP_ACT_ERRNO", (2, 7, 0, "SCMP_CMP_EQ")),
        rule(["kill"], "SCMP_ACT_KILL"),
        rule(["getpid", "getppid", "gettid"], "SCMP_ACT_ERRNO", errno=38),
    ]}
    resolved = profile.resolve(profile.load(profile_file(tmp_path, data)), frozenset())
    assert_same_decisions(resolved)


def test_without_x32_its_syscalls_are_another_architecture(tmp_path):
    data = {"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_X86_64"],
            "syscalls": [rule(["read", "write", "exit_group"], "SCMP_ACT_ALLOW")]}
    resolved = profile.resolve(profile.load(profile_file(tmp_path, data)), frozenset())
    assert_same_decisions(resolved)


def test_aarch64_and_arm_are_assembled_too():
    """Their numbers, arm's 32-bit arguments and its private calls (0xf0000 on)."""
    resolved = resolved_default(mask(DEFAULT_CAPABILITIES))
    foreign = profile.Resolved(resolved.source, resolved.default_action, resolved.default_errno,
                               ("SCMP_ARCH_X86_64", "SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"),
                               resolved.rules, resolved.flags)
    assert_same_decisions(foreign)


@pytest.mark.parametrize("syscalls", [
    # x86 reaches socket(2) through socketcall(2) too, and socketcall is allowed
    [rule(["socket"], "SCMP_ACT_ERRNO"), rule(["socketcall"], "SCMP_ACT_ALLOW")],
    # two actions for one syscall: which wins is libseccomp's to say
    [rule(["read"], "SCMP_ACT_ERRNO", (0, 1, 0, "SCMP_CMP_EQ")),
     rule(["read"], "SCMP_ACT_KILL", (0, 2, 0, "SCMP_CMP_EQ"))],
], ids=["multiplexed-socket", "two-actions"])
def test_what_it_does_not_assemble_libseccomp_compiles(tmp_path, syscalls):
    data = {"defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
            "syscalls": syscalls}
    resolved = profile.resolve(profile.load(profile_file(tmp_path, data)), frozenset())
    assert filters.compile_program(resolved) == filters.libseccomp_program(resolved)


def test_a_masked_comparison_masks_its_value_too(tmp_path):
    """(arg & mask) == (value & mask), as libseccomp compares (runc hands it the pair)."""
    data = {"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
            "syscalls": [rule(["ioctl"], "SCMP_ACT_ERRNO", (1, 0xF0, 0x1F3, "SCMP_CMP_MASKED_EQ")),
                         rule(["open"], "SCMP_ACT_ERRNO", (0, 0x7E020000, (1 << 40) + 5,
                                                           "SCMP_CMP_MASKED_EQ"))]}
    resolved = profile.resolve(profile.load(profile_file(tmp_path, data)), frozenset())
    assert_same_decisions(resolved, arches=(X86_64, X86))
    program = filters.compile_program(resolved)
    ioctl = 16  # x86_64
    assert bpf_machine.run(program, bpf_machine.data(X86_64, ioctl, (0, 0xF5))) == 0x00050001
    assert bpf_machine.run(program, bpf_machine.data(X86_64, ioctl, (0, 0x05))) == 0x7FFF0000


def test_two_range_rules_on_one_argument_decide_as_the_profile_says(tmp_path):
    """Either holds: allowed. (libseccomp 2.5's program refuses 1 here: it compares the
    argument's low word with the second rule's high word.)"""
    data = {"defaultAction": "SCMP_ACT_KILL", "architectures": ["SCMP_ARCH_X86_64"],
            "syscalls": [rule(["connect"], "SCMP_ACT_ALLOW", (0, 0, 0, "SCMP_CMP_LE"),
                              (0, 1 << 32, 0, "SCMP_CMP_LE"))]}
    resolved = profile.resolve(profile.load(profile_file(tmp_path, data)), frozenset())
    program = filters.compile_program(resolved)
    connect = 42  # x86_64
    for arg, allowed in ((0, True), (1, True), (1 << 32, True), ((1 << 32) + 1, False)):
        got = bpf_machine.run(program, bpf_machine.data(X86_64, connect, (arg,)))
        assert got == (0x7FFF0000 if allowed else 0), hex(arg)
        assert got == seccomp_model.decide(resolved, X86_64, connect, (arg, 0, 0, 0, 0, 0))


FUZZ_NAMES = ("read", "write", "open", "close", "socket", "connect", "bind", "recvmmsg", "ipc",
              "socketcall", "semget", "shmat", "clone", "personality", "mmap", "ioctl", "prctl",
              "kill", "accept", "accept4", "recv", "futex", "openat", "ptrace", "unshare", "dup2",
              "cacheflush", "set_tls")
FUZZ_ACTIONS = ("SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL", "SCMP_ACT_TRAP", "SCMP_ACT_LOG",
                "SCMP_ACT_KILL_PROCESS")
FUZZ_VALUES = (0, 1, 2, 7, 0xFF, 0xFFFFFFFF, 1 << 32, (1 << 40) + 5, 2**64 - 1, 0x7E020000)
FUZZ_ARCHES = (["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"], ["SCMP_ARCH_X86_64"],
               ["SCMP_ARCH_X86_64", "SCMP_ARCH_X32"], ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"])


def random_profile(rng: random.Random) -> dict:
    """Rules of random actions, names (each with one action) and conditions."""
    calls, action_of = [], {}
    for _ in range(rng.randint(1, 10)):
        action = rng.choice(FUZZ_ACTIONS)
        names = [n for n in rng.sample(FUZZ_NAMES, rng.randint(1, 4))
                 if action_of.setdefault(n, action) == action]
        args = [(rng.randint(0, 2), rng.choice(FUZZ_VALUES), rng.choice(FUZZ_VALUES),
                 rng.choice(profile.OPS)) for _ in range(rng.choice((0, 0, 1, 1, 2)))]
        if names:
            calls.append(rule(names, action, *args, errno=rng.randint(1, 99) if rng.random() < 0.3
                              else None))
    return {"defaultAction": rng.choice(FUZZ_ACTIONS), "architectures": rng.choice(FUZZ_ARCHES),
            "syscalls": calls}


def test_random_profiles_decide_as_their_rules_say(tmp_path):
    rng = random.Random(20261205)
    numbers = [*range(560), *(0x40000000 + n for n in range(560)), *range(0xF0000, 0xF0008),
               0x3FFFFFFF, 0xFFFFFFFF]
    assembled = 0
    while assembled < 25:
        resolved = profile.resolve(profile.load(profile_file(tmp_path, random_profile(rng))),
                                   frozenset())
        program = filters.compile_program(resolved)
        if program == filters.libseccomp_program(resolved):
            continue  # left to libseccomp
        assembled += 1
        cases = [(0,) * 6, *argument_sets(resolved)]
        for arch, nr in itertools.product((X86_64, X86, AARCH64, ARM, UNKNOWN), numbers):
            loaded: set[int] = set()
            for args in cases:
                expected = seccomp_model.decide(resolved, arch, nr, args)
                got = bpf_machine.run(program, bpf_machine.data(arch, nr, args), loaded)
                assert expected is None or got == expected, (json.dumps(resolved.rules), hex(arch),
                                                             hex(nr), args)
                if not loaded & set(ARG_OFFSETS):
                    break  # the arguments were not read: the others decide alike
