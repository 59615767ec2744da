"""A sandbox's seccomp filter as a BPF program, compiled once per profile and capability set.

``filter_for(seccomp, keep_caps)`` is what the planner asks: None for
``unconfined``, else a ``SeccompFilter`` (the profile's name, the program,
the seccomp(2) flags) that goes into the plan; the container's last step
before exec loads it (``process.confine``). The program depends on the
profile's bytes, the capabilities (Docker's capability-dependent rules),
this architecture and kernel (``arches``, ``minKernel``) and the libseccomp
version, so that is its cache key: kept in this process and in
``$SANDBOX_STATE_DIR/seccomp/<key>.bpf``, so even a one-shot ``sandbox run``
compiles a profile once per host, not once per run.

The program is ``assembler``'s where it can make it (a third of the length of
libseccomp's for Docker's default profile, with the same decisions), else
libseccomp's. How rules become libseccomp calls follows runc: syscall names this
libseccomp does not know are skipped, a rule whose action is the default
action is left out (libseccomp refuses it), and a rule with two conditions
on the same argument becomes one rule per condition.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from .. import state
from ..errors import HostError, SpecError
from ..linux import libseccomp
from ..linux.caps import CAPABILITIES
from ..linux.seccomp import FILTER_FLAGS, INSTRUCTION_SIZE
from ..plan import SeccompFilter
from .assembler import assemble
from .profile import Resolved, Rule, load, resolve

EPERM = 1
#: Bumped when the way a profile becomes a program changes (part of the cache key).
COMPILER_VERSION = "3"


def capability_names(keep_caps: int) -> frozenset[str]:
    """``CAP_*`` names of the capabilities in a mask, as profiles name them."""
    return frozenset(f"CAP_{name}" for name, bit in CAPABILITIES.items() if keep_caps & (1 << bit))


def filter_for(seccomp: str, keep_caps: int) -> SeccompFilter | None:
    """The filter for a sandbox's ``seccomp`` setting and capability mask (None: unconfined).

    A sandbox after the first of its profile and capabilities costs a dict
    lookup here (a profile file is re-read and hashed, so an edit is seen);
    its container only installs the program (``process.confine``).
    """
    if seccomp == "unconfined":
        return None
    profile = load(seccomp)
    known = (seccomp, profile.digest, keep_caps)
    found = _MADE.get(known)
    if found is None:
        found = _MADE[known] = _compiled(seccomp, resolve(profile, capability_names(keep_caps)))
    return found


def _compiled(seccomp: str, resolved: Resolved) -> SeccompFilter:
    """The program of ``resolved``: from this process, the cache dir, or libseccomp."""
    key = cache_key(resolved, os.uname().machine, _libseccomp_version())
    found = _COMPILED.get(key)
    if found is None:
        program = _read_cached(key)
        if program is None:
            program = compile_program(resolved)
            _write_cached(key, program)
        found = _COMPILED[key] = SeccompFilter(seccomp, program, flag_bits(resolved.flags))
    return found._replace(profile=seccomp) if found.profile != seccomp else found


#: By (setting, profile digest, capability mask): what the planner asks, per sandbox.
_MADE: dict[tuple[str, str, int], SeccompFilter] = {}
#: By cache key: one program per resolved filter, shared by profiles that resolve alike.
_COMPILED: dict[str, SeccompFilter] = {}


def flag_bits(flags: tuple[str, ...]) -> int:
    bits = 0
    for flag in flags:
        bits |= FILTER_FLAGS[flag]
    return bits


def cache_key(resolved: Resolved, machine: str, libseccomp_version: str) -> str:
    """What the program depends on: the rules, architectures and flags it was made
    from (the profile resolved for the capabilities, architecture and kernel), the
    machine, libseccomp's version and how we compile (``COMPILER_VERSION``); not the
    profile's name or path (profiles that resolve alike share a program)."""
    text = "\n".join((COMPILER_VERSION, resolved.default_action, repr(resolved.default_errno),
                      repr(resolved.arches), repr(resolved.rules), repr(resolved.flags),
                      machine, libseccomp_version))
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def cache_dir() -> Path:
    return state.lib_dir() / "seccomp"


def _read_cached(key: str) -> bytes | None:
    try:
        program = (cache_dir() / f"{key}.bpf").read_bytes()
    except OSError:
        return None
    return program if program and len(program) % INSTRUCTION_SIZE == 0 else None


def _write_cached(key: str, program: bytes) -> None:
    """Keep the program for the next process (best effort: a read-only state dir is fine)."""
    directory = cache_dir()
    tmp = directory / f".{key}.{os.getpid()}.tmp"
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp.write_bytes(program)
        os.rename(tmp, directory / f"{key}.bpf")
    except OSError:
        tmp.unlink(missing_ok=True)


def _libseccomp_version() -> str:
    try:
        return libseccomp.version()
    except libseccomp.LibseccompMissing as exc:
        raise HostError(f"seccomp filters need libseccomp: {exc}",
                        hint="apt-get install libseccomp2, or run with --security-opt "
                        "seccomp=unconfined") from exc


def action_value(action: str, errno_value: int | None) -> int:
    """libseccomp's number for a profile action (ERRNO and TRACE carry a value)."""
    if action == "SCMP_ACT_ERRNO":
        return libseccomp.act_errno(EPERM if errno_value is None else errno_value)
    if action == "SCMP_ACT_TRACE":
        return libseccomp.act_trace(EPERM if errno_value is None else errno_value)
    return {"SCMP_ACT_KILL": libseccomp.ACT_KILL_THREAD, "SCMP_ACT_KILL_THREAD": libseccomp.ACT_KILL_THREAD,
            "SCMP_ACT_KILL_PROCESS": libseccomp.ACT_KILL_PROCESS, "SCMP_ACT_TRAP": libseccomp.ACT_TRAP,
            "SCMP_ACT_ALLOW": libseccomp.ACT_ALLOW, "SCMP_ACT_LOG": libseccomp.ACT_LOG}[action]


def compile_program(resolved: Resolved) -> bytes:
    """The BPF program of a resolved filter: assembled here (``assembler``: a program a
    few times shorter, which each sandbox's start loads faster), else libseccomp's."""
    default = action_value(resolved.default_action, resolved.default_errno)
    arches = _arch_tokens(resolved)
    native = libseccomp.native_arch()  # in every filter (seccomp_init adds it), as with runc
    program = assemble(resolved, (native, *arches), default,
                       lambda rule: action_value(rule.action, rule.errno), libseccomp.syscall_number)
    return program if program is not None else libseccomp_program(resolved)


def libseccomp_program(resolved: Resolved) -> bytes:
    """The BPF program libseccomp compiles for a resolved filter."""
    default = action_value(resolved.default_action, resolved.default_errno)
    arches = _arch_tokens(resolved)
    native = libseccomp.native_arch()
    with libseccomp.Compiler(default, arches) as compiler:
        for rule in resolved.rules:
            action = action_value(rule.action, rule.errno)
            if action != default:
                _add(compiler, rule, action, native)
        program = compiler.export_bpf()
    if not program or len(program) % INSTRUCTION_SIZE:
        raise HostError(f"libseccomp made no usable program for seccomp profile {resolved.source}")
    return program


def _arch_tokens(resolved: Resolved) -> tuple[int, ...]:
    arches = tuple(a for a in (_arch_token(name) for name in resolved.arches) if a is not None)
    if not arches:
        raise SpecError("seccomp profile", resolved.source, "an architecture this machine runs "
                        f"({os.uname().machine})")
    return arches


def _arch_token(name: str) -> int | None:
    return libseccomp.resolve_arch(name.removeprefix("SCMP_ARCH_").lower())


def _add(compiler: libseccomp.Compiler, rule: Rule, action: int, native: int) -> None:
    """Add one rule for each of its names that libseccomp knows.

    Names are resolved for the native architecture: a syscall only a
    sub-architecture has (x86's socketcall) gets a negative pseudo number,
    which libseccomp places in that architecture's part of the program.
    """
    conditions = tuple((a.position, libseccomp.COMPARE_OPS[a.op], a.value, a.value_two)
                       for a in rule.args)
    indexes = [c[0] for c in conditions]
    split = len(set(indexes)) != len(indexes)
    for name in rule.names:
        number = libseccomp.syscall_number(native, name)
        if number is None:
            continue  # a syscall this libseccomp (or architecture) does not have
        if split:
            for condition in conditions:
                compiler.add_rule(action, number, (condition,))
        else:
            compiler.add_rule(action, number, conditions)
