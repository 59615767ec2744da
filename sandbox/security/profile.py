"""Seccomp profiles in Docker's JSON format: read, checked, resolved for one sandbox.

A profile (Docker's ``--security-opt seccomp=FILE``; moby's
``profiles/seccomp/default.json`` works unmodified, and ours *is* that file,
vendored: ``default.json``) says what happens to each syscall: a default
action, then rules, each for some syscall names, with an action, maybe an
errno and conditions on the arguments. Rules may apply only with some
capabilities, on some architectures or from some kernel version on
(``includes``), or not with them (``excludes``).

``load`` reads and checks a profile (a bad one is one SpecError line naming
the file and the key); ``resolve`` keeps the rules that apply to one sandbox
(its capabilities, this architecture and kernel), as Docker's daemon does
before it hands the profile to runc; what is left is a ``Resolved`` filter,
which ``filters`` compiles, and ``to_oci`` writes as the
``linux.seccomp`` object of a runc config (the tests run runc with it).

One more profile is built in: ``nested``, Docker's default plus exactly what
``sandbox.fork_nested`` does that the default refuses (clone with its set of
namespaces, the mounts it makes there, its pivot into a root of its own): for a process that runs untrusted
code in nested copies of itself, each of which stacks the default filter on
top (the pytest plugin's remote batches).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
from dataclasses import dataclass
from typing import Any, NamedTuple

from .. import linux
from ..errors import SpecError

#: The built-in profile: moby's default.json, as published (see NOTICE beside it).
DEFAULT_PROFILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "default.json")
#: The built-in profile for a process that makes nested copies of itself (see above).
NESTED = "nested"
#: The namespaces of a nested copy (``sandbox.fork_nested``), all in one clone.
NESTED_NAMESPACES = (linux.CLONE_NEWUSER | linux.CLONE_NEWNS | linux.CLONE_NEWPID
                     | linux.CLONE_NEWNET | linux.CLONE_NEWIPC | linux.CLONE_NEWUTS)
#: The mount flags a nested copy mounts with, and no others: / made private (recursively),
#: a tmpfs on /tmp and /dev/shm (and the overlays of a root of its own), and the trees it
#: binds into that root as they are.
NESTED_MOUNT_FLAGS = (linux.MS_REC | linux.MS_PRIVATE, linux.MS_NOSUID | linux.MS_NODEV,
                      linux.MS_BIND | linux.MS_REC)
#: Every CLONE_NEW* flag: the mask Docker's default clone rule checks.
NAMESPACE_FLAGS = (linux.CLONE_NEWNS | linux.CLONE_NEWCGROUP | linux.CLONE_NEWUTS | linux.CLONE_NEWIPC
                   | linux.CLONE_NEWUSER | linux.CLONE_NEWPID | linux.CLONE_NEWNET)
ACTIONS = ("SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL_THREAD", "SCMP_ACT_TRAP",
           "SCMP_ACT_ERRNO", "SCMP_ACT_TRACE", "SCMP_ACT_ALLOW", "SCMP_ACT_LOG")
OPS = ("SCMP_CMP_NE", "SCMP_CMP_LT", "SCMP_CMP_LE", "SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT",
       "SCMP_CMP_MASKED_EQ")
FLAGS = ("SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
         "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV")
TOP_KEYS = ("defaultAction", "defaultErrnoRet", "architectures", "archMap", "syscalls", "flags")
SYSCALL_KEYS = ("name", "names", "action", "args", "comment", "includes", "excludes", "errnoRet")
FILTER_KEYS = ("caps", "arches", "minKernel")
ARG_KEYS = ("index", "value", "valueTwo", "op")
UNSUPPORTED = {"listenerPath": "a seccomp agent (SCMP_ACT_NOTIFY) is not supported",
               "listenerMetadata": "a seccomp agent (SCMP_ACT_NOTIFY) is not supported"}
#: Machine names (uname -m) as Go names them: the names a profile's ``arches`` use.
GO_ARCHES = {"x86_64": "amd64", "aarch64": "arm64", "i686": "386", "i386": "386", "armv7l": "arm",
             "riscv64": "riscv64", "s390x": "s390x", "ppc64le": "ppc64le",
             "loongarch64": "loong64", "mips64": "mips64", "mips64el": "mips64le"}
#: Go's names for this machine and its profile architecture (SCMP_ARCH_*).
SCMP_ARCHES = {"amd64": "SCMP_ARCH_X86_64", "arm64": "SCMP_ARCH_AARCH64", "386": "SCMP_ARCH_X86",
               "arm": "SCMP_ARCH_ARM", "riscv64": "SCMP_ARCH_RISCV64", "s390x": "SCMP_ARCH_S390X",
               "ppc64le": "SCMP_ARCH_PPC64LE", "loong64": "SCMP_ARCH_LOONGARCH64",
               "mips64": "SCMP_ARCH_MIPS64", "mips64le": "SCMP_ARCH_MIPSEL64"}
MAX_PROFILE = 4 << 20


class Arg(NamedTuple):
    """A condition on one argument: ``op`` compares argument ``position`` with ``value``
    (for SCMP_CMP_MASKED_EQ: ``arg & value == value_two``)."""

    position: int
    value: int
    value_two: int
    op: str


class Rule(NamedTuple):
    """What happens to ``names`` when every one of ``args`` holds."""

    names: tuple[str, ...]
    action: str
    errno: int | None
    args: tuple[Arg, ...]


@dataclass(frozen=True)
class Profile:
    """A checked profile, as written (``source``: "default" or the file's path)."""

    source: str
    digest: str
    data: dict[str, Any]


@dataclass(frozen=True)
class Resolved:
    """The filter one sandbox gets: the rules that apply to its capabilities, here."""

    source: str
    default_action: str
    default_errno: int | None
    arches: tuple[str, ...]  # SCMP_ARCH_* names, the native one first
    rules: tuple[Rule, ...]
    flags: tuple[str, ...]


def load(source: str) -> Profile:
    """The profile ``source`` names ("default", "nested" or a JSON file), checked; SpecError
    if bad."""
    if source == NESTED:
        base = load("default")
        return Profile(NESTED, f"{base.digest}+{NESTED}", base.data)  # its rules: ``resolve``
    path = DEFAULT_PROFILE if source == "default" else source
    cached = _LOADED.get(source)
    if cached is not None and source == "default":
        return cached  # part of the package: read once per process
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_PROFILE + 1)
    except OSError as exc:
        raise SpecError("seccomp profile", source, f"a readable JSON file ({exc.strerror})") from exc
    digest = hashlib.sha256(raw).hexdigest()
    if cached is not None and cached.digest == digest:
        return cached
    if len(raw) > MAX_PROFILE:
        raise SpecError("seccomp profile", source, "a JSON file of at most 4 MiB")
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise SpecError("seccomp profile", source, f"JSON ({exc})") from exc
    _check(source, data)
    profile = _LOADED[source] = Profile(source, digest, data)
    return profile


_LOADED: dict[str, Profile] = {}


def _bad(source: str, where: str, accepted: str) -> SpecError:
    return SpecError("seccomp profile", source, f"{accepted} at {where}",
                     shown=f"{source!r}" if source != "default" else "default")


def _check(source: str, data: object) -> None:
    """Refuse what the profile format does not allow, naming where."""
    if not isinstance(data, dict):
        raise _bad(source, "the top level", "an object")
    for key in data:
        if key in UNSUPPORTED:
            raise _bad(source, key, f"no {key} ({UNSUPPORTED[key]})")
        if key not in TOP_KEYS:
            raise _bad(source, key, "only the keys " + ", ".join(TOP_KEYS))
    if data.get("defaultAction") not in ACTIONS:
        raise _bad(source, "defaultAction", "one of " + ", ".join(ACTIONS))
    _check_int(source, data.get("defaultErrnoRet"), "defaultErrnoRet", optional=True)
    if "architectures" in data and "archMap" in data:
        raise _bad(source, "architectures", "either architectures or archMap, not both")
    _check_strings(source, data.get("architectures", []), "architectures")
    for i, entry in enumerate(_list(source, data.get("archMap", []), "archMap")):
        if not isinstance(entry, dict) or not isinstance(entry.get("architecture"), str):
            raise _bad(source, f"archMap[{i}]", "an object with an architecture")
        _check_strings(source, entry.get("subArchitectures") or [], f"archMap[{i}].subArchitectures")
    flags = _check_strings(source, data.get("flags") or [], "flags")
    for flag in flags:
        if flag not in FLAGS:
            raise _bad(source, "flags", "flags among " + ", ".join(FLAGS))
    for i, call in enumerate(_list(source, data.get("syscalls") or [], "syscalls")):
        _check_syscall(source, call, f"syscalls[{i}]")


def _check_syscall(source: str, call: object, where: str) -> None:
    if not isinstance(call, dict):
        raise _bad(source, where, "an object")
    for key in call:
        if key not in SYSCALL_KEYS:
            raise _bad(source, f"{where}.{key}", "only the keys " + ", ".join(SYSCALL_KEYS))
    names = _check_strings(source, call.get("names") or [], f"{where}.names")
    if not names and not isinstance(call.get("name"), str):
        raise _bad(source, where, "names (a list of syscall names)")
    if call.get("action") not in ACTIONS:
        raise _bad(source, f"{where}.action", "one of " + ", ".join(ACTIONS))
    _check_int(source, call.get("errnoRet"), f"{where}.errnoRet", optional=True)
    for j, arg in enumerate(_list(source, call.get("args") or [], f"{where}.args")):
        if not isinstance(arg, dict) or set(arg) - set(ARG_KEYS) or arg.get("op") not in OPS:
            raise _bad(source, f"{where}.args[{j}]", "index, value, valueTwo and op (" + ", ".join(OPS) + ")")
        _check_int(source, arg.get("index"), f"{where}.args[{j}].index", top=5)
        for key in ("value", "valueTwo"):
            _check_int(source, arg.get(key, 0), f"{where}.args[{j}].{key}", top=(1 << 64) - 1)
    for key in ("includes", "excludes"):
        rule = call.get(key) or {}
        if not isinstance(rule, dict) or set(rule) - set(FILTER_KEYS):
            raise _bad(source, f"{where}.{key}", "an object with caps, arches or minKernel")
        _check_strings(source, rule.get("caps") or [], f"{where}.{key}.caps")
        _check_strings(source, rule.get("arches") or [], f"{where}.{key}.arches")
        if "minKernel" in rule and kernel_version(rule["minKernel"]) is None:
            raise _bad(source, f"{where}.{key}.minKernel", 'a kernel version like "4.8"')


def _list(source: str, value: object, where: str) -> list:
    if not isinstance(value, list):
        raise _bad(source, where, "a list")
    return value


def _check_strings(source: str, value: object, where: str) -> list[str]:
    items = _list(source, value, where)
    if not all(isinstance(v, str) for v in items):
        raise _bad(source, where, "a list of strings")
    return items


def _check_int(source: str, value: object, where: str, *, optional: bool = False,
               top: int = 0xFFFF) -> None:
    if value is None and optional:
        return
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= top:
        raise _bad(source, where, f"a whole number from 0 to {top}")


def kernel_version(text: object) -> tuple[int, int] | None:
    """(major, minor) of a kernel release like ``6.1.0-57-amd64``; None if it is not one."""
    if not isinstance(text, str):
        return None
    major, _, rest = text.partition(".")
    minor = rest.split(".")[0].split("-")[0]
    if not (major.isdigit() and (minor.isdigit() or not minor)):
        return None
    return int(major), int(minor or 0)


def go_arch(machine: str | None = None) -> str:
    """This machine's architecture as Go (and so a profile's ``arches``) names it."""
    machine = machine or platform.machine()
    return GO_ARCHES.get(machine, machine)


def resolve(profile: Profile, caps: frozenset[str], *, arch: str | None = None,
            kernel: tuple[int, int] | None = None) -> Resolved:
    """The rules of ``profile`` for a sandbox with capabilities ``caps`` (``CAP_*``
    names), on architecture ``arch`` (Go's name) and kernel ``kernel`` (this one's
    by default), as Docker's daemon resolves them."""
    data = profile.data
    arch = arch or go_arch()
    kernel = kernel or kernel_version(os.uname().release) or (0, 0)
    rules = []
    for call in data.get("syscalls") or []:
        if _applies(call, caps, arch, kernel):
            names = tuple(call.get("names") or [call["name"]])
            args = tuple(Arg(a["index"], a.get("value", 0), a.get("valueTwo", 0), a["op"])
                         for a in call.get("args") or [])
            rules.append(Rule(names, call["action"], call.get("errnoRet"), args))
    if profile.source == NESTED:
        rules += nested_rules(rules)
    return Resolved(profile.source, data["defaultAction"], data.get("defaultErrnoRet"),
                    _arches(data, arch), tuple(rules), tuple(data.get("flags") or ()))


def nested_rules(rules: list[Rule]) -> list[Rule]:
    """What the ``nested`` profile allows beyond ``rules`` (the default's, resolved): clone
    with exactly NESTED_NAMESPACES (checked on the argument the default's own clone rule
    checks, which is not the first on every architecture), mount with exactly one of
    NESTED_MOUNT_FLAGS, pivot_root, and umount2 with MNT_DETACH. Without CAP_SYS_ADMIN,
    the default has no rule of its own for mount, pivot_root or umount2, and allows clone
    only without namespace flags."""
    added = [Rule(("clone",), "SCMP_ACT_ALLOW", None,
                  (Arg(arg.position, NAMESPACE_FLAGS, NESTED_NAMESPACES, "SCMP_CMP_MASKED_EQ"),))
             for rule in rules if "clone" in rule.names and rule.action == "SCMP_ACT_ALLOW"
             for arg in rule.args if arg.op == "SCMP_CMP_MASKED_EQ" and arg.value == NAMESPACE_FLAGS]
    added += [Rule(("mount",), "SCMP_ACT_ALLOW", None, (Arg(3, flags, 0, "SCMP_CMP_EQ"),))
              for flags in NESTED_MOUNT_FLAGS]
    # a root of its own: into it, then the old one detached
    added += [Rule(("pivot_root",), "SCMP_ACT_ALLOW", None, ()),
              Rule(("umount2",), "SCMP_ACT_ALLOW", None,
                   (Arg(1, linux.MNT_DETACH, 0, "SCMP_CMP_EQ"),))]
    return added


def _applies(call: dict, caps: frozenset[str], arch: str, kernel: tuple[int, int]) -> bool:
    """Docker's includes (all must hold) and excludes (any one drops the rule)."""
    excludes = call.get("excludes") or {}
    if arch in (excludes.get("arches") or ()):
        return False
    if any(cap in caps for cap in excludes.get("caps") or ()):
        return False
    if "minKernel" in excludes and kernel >= kernel_version(excludes["minKernel"]):  # type: ignore[operator]
        return False
    includes = call.get("includes") or {}
    if includes.get("arches") and arch not in includes["arches"]:
        return False
    if not all(cap in caps for cap in includes.get("caps") or ()):
        return False
    return not ("minKernel" in includes and kernel < kernel_version(includes["minKernel"]))  # type: ignore[operator]


def _arches(data: dict, arch: str) -> tuple[str, ...]:
    """The SCMP_ARCH_* names the filter covers: this one and its sub-architectures."""
    native = SCMP_ARCHES.get(arch)
    listed: tuple[str, ...] = tuple(data.get("architectures") or ())
    if native is None or "architectures" in data:
        return (native, *(a for a in listed if a != native)) if native and native in listed else listed
    for entry in data.get("archMap") or []:
        if entry["architecture"] == native:
            return (native, *(entry.get("subArchitectures") or ()))
    return (native,)


def to_oci(resolved: Resolved) -> dict[str, Any]:
    """The filter as a runc config's ``linux.seccomp`` object (OCI runtime spec)."""
    out: dict[str, Any] = {"defaultAction": resolved.default_action,
                           "architectures": list(resolved.arches), "syscalls": []}
    if resolved.default_errno is not None:
        out["defaultErrnoRet"] = resolved.default_errno
    if resolved.flags:
        out["flags"] = list(resolved.flags)
    for rule in resolved.rules:
        entry: dict[str, Any] = {"names": list(rule.names), "action": rule.action}
        if rule.errno is not None:
            entry["errnoRet"] = rule.errno
        if rule.args:
            entry["args"] = [{"index": a.position, "value": a.value, "valueTwo": a.value_two,
                              "op": a.op} for a in rule.args]
        out["syscalls"].append(entry)
    return out
