"""What a sandbox is asked to be: frozen, validated dataclasses.

A SandboxSpec is data. It is validated once, when it is made, and every bad
value raises SpecError naming the field and what is accepted. Strings such as
``"256m"`` and ``"30s"`` are accepted wherever a size or duration is expected
and are normalised to bytes and seconds.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

from .errors import SpecError
from .units import parse_duration, parse_size

#: Docker's default capability set (moby/oci/caps/defaults.go).
DEFAULT_CAPABILITIES: tuple[str, ...] = (
    "CHOWN", "DAC_OVERRIDE", "FSETID", "FOWNER", "MKNOD", "NET_RAW", "SETGID",
    "SETUID", "SETFCAP", "SETPCAP", "NET_BIND_SERVICE", "SYS_CHROOT", "KILL",
    "AUDIT_WRITE",
)

#: rlimit names accepted by ``--ulimit NAME=SOFT[:HARD]``.
ULIMIT_NAMES = ("nofile", "fsize", "core", "nproc", "stack", "memlock", "cpu", "as")

_HOSTNAME_RE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
_ENV_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_USER_RE = re.compile(r"^([A-Za-z0-9_.-]+)(?::([A-Za-z0-9_.-]+))?$")
_CPUSET_RE = re.compile(r"^\d+(-\d+)?(,\d+(-\d+)?)*$")

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#: Container paths every sandbox mounts itself: a bind over one would break the sandbox.
OWN_MOUNTS = ("/", "/dev", "/proc", "/sys")
#: The largest uid or gid (4294967295 is -1, "no change", to the kernel).
MAX_ID = 0xFFFFFFFE
#: ``SandboxSpec.userns``: the host's user namespace, or one of its own per sandbox.
USERNS_MODES = ("host", "auto")


def _set(obj: object, name: str, value: object) -> None:
    object.__setattr__(obj, name, value)


@dataclass(frozen=True)
class Mount:
    """A bind mount of a host path into the container; read-only unless asked."""

    source: str
    target: str
    read_only: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.source, str) or not os.path.isabs(self.source):
            raise SpecError("mount source", self.source, "an absolute host path")
        if not os.path.exists(self.source):
            raise SpecError("mount source", self.source, "an existing host path")
        if not isinstance(self.target, str) or not self.target.startswith("/"):
            raise SpecError("mount target", self.target, "an absolute container path")
        if ".." in self.target.split("/"):
            raise SpecError("mount target", self.target, "a container path below / without '..'")
        target = os.path.normpath(self.target).replace("//", "/")
        if target in OWN_MOUNTS:
            raise SpecError("mount target", self.target, "a path other than /, /dev, /proc and "
                            "/sys, which every sandbox mounts itself")
        _set(self, "source", os.path.realpath(self.source))
        _set(self, "target", target)

    @classmethod
    def parse(cls, text: str) -> "Mount":
        """``SRC:DST[:ro|rw]`` as on Docker's ``-v``; read-only by default."""
        parts = text.split(":")
        mode = "ro"
        if len(parts) == 3:
            mode = parts.pop()
        if len(parts) != 2 or mode not in ("ro", "rw") or not all(parts):
            raise SpecError("volume", text, "SRC:DST, SRC:DST:ro or SRC:DST:rw, with a host "
                            "path SRC and a container path DST")
        return cls(os.path.abspath(parts[0]), parts[1], read_only=(mode == "ro"))


@dataclass(frozen=True)
class Ulimit:
    """One rlimit, only ever lowered (raising needs CAP_SYS_RESOURCE)."""

    name: str
    soft: int
    hard: int

    @classmethod
    def parse(cls, text: str) -> "Ulimit":
        """``NAME=SOFT[:HARD]`` as on Docker's ``--ulimit``."""
        accepted = f"NAME=SOFT[:HARD] with NAME one of {', '.join(ULIMIT_NAMES)}"
        name, sep, values = text.partition("=")
        if not sep or name not in ULIMIT_NAMES:
            raise SpecError("ulimit", text, accepted)
        soft_text, _, hard_text = values.partition(":")
        try:
            soft = int(soft_text)
            hard = int(hard_text) if hard_text else soft
        except ValueError:
            raise SpecError("ulimit", text, accepted) from None
        if soft < 0 or hard < 0 or soft > hard:
            raise SpecError("ulimit", text, "non-negative SOFT <= HARD")
        return cls(name, soft, hard)


@dataclass(frozen=True)
class Limits:
    """Resource limits, all enforced by the kernel. None means unlimited.

    Sizes are bytes, durations seconds; strings like ``"256m"`` and ``"30s"``
    are accepted and normalised.
    """

    memory: int | None = 1 << 30
    memory_swap: int | None = None  # extra swap beyond memory; None = swap off
    cpus: float | None = None
    cpuset: str | None = None
    pids: int | None = 4096
    timeout: float | None = None
    #: End the sandbox after this long without output or input (an interactive session).
    idle_timeout: float | None = None
    output: int | None = 16 << 20
    disk: int | None = 1 << 30
    ulimits: tuple[Ulimit, ...] = (Ulimit("core", 0, 0),)

    def __post_init__(self) -> None:
        _set(self, "memory", parse_size("memory", self.memory))
        if self.memory is not None and self.memory < (4 << 20):
            raise SpecError("memory", self.memory, "at least 4m")
        _set(self, "memory_swap", parse_size("memory_swap", self.memory_swap))
        _set(self, "output", parse_size("output limit", self.output))
        _set(self, "disk", parse_size("disk", self.disk))
        _set(self, "timeout", parse_duration("timeout", self.timeout))
        _set(self, "idle_timeout", parse_duration("idle timeout", self.idle_timeout))
        _set(self, "cpus", _parse_cpus(self.cpus))
        _set(self, "pids", _parse_pids(self.pids))
        if self.cpuset is not None and not _CPUSET_RE.match(str(self.cpuset)):
            raise SpecError("cpuset", self.cpuset, "CPU numbers like 0, 0-1 or 0,2")
        ulimits = tuple(u if isinstance(u, Ulimit) else Ulimit.parse(u) for u in self.ulimits)
        _set(self, "ulimits", ulimits)

    @classmethod
    def unlimited(cls) -> "Limits":
        """Limits with nothing limited (still in a cgroup, still killable)."""
        return cls(memory=None, pids=None, output=None, disk=None, ulimits=())


def _parse_cpus(value: object) -> float | None:
    accepted = "a positive number of CPUs like 0.5 or 2 (or 0/none for unlimited)"
    if value is None or (isinstance(value, str) and value.lower() in ("none", "0")):
        return None
    try:
        cpus = float(value)  # type: ignore[arg-type]  # any value: what float() refuses is caught
    except (TypeError, ValueError):
        raise SpecError("cpus", value, accepted) from None
    if cpus < 0 or not math.isfinite(cpus) or isinstance(value, bool):
        raise SpecError("cpus", value, accepted)
    if 0 < cpus < 0.01:
        raise SpecError("cpus", value, "at least 0.01")
    return cpus or None


def _parse_pids(value: object) -> int | None:
    accepted = "a positive process count like 128 (or 0/none for unlimited)"
    if value is None or (isinstance(value, str) and value.lower() in ("none", "0", "max")):
        return None
    try:
        pids = int(value)  # type: ignore[call-overload]  # any value: what int() refuses is caught
    except (TypeError, ValueError, OverflowError):
        raise SpecError("pids", value, accepted) from None
    if pids < 0 or isinstance(value, bool):
        raise SpecError("pids", value, accepted)
    return pids or None


@dataclass(frozen=True)
class Publish:
    """``HOSTPORT:PORT``: a container TCP port published on the host's loopback."""

    host_port: int
    port: int

    def __str__(self) -> str:
        return f"{self.host_port}:{self.port}"

    @classmethod
    def parse(cls, text: str) -> "Publish":
        host, sep, port = str(text).partition(":")
        try:
            result = cls(int(host), int(port))
        except ValueError:
            raise SpecError("publish", text, "HOSTPORT:PORT like 8080:80") from None
        if not sep or not (0 < result.host_port < 65536 and 0 < result.port < 65536):
            raise SpecError("publish", text, "HOSTPORT:PORT with ports 1-65535")
        return result


@dataclass(frozen=True)
class NetworkSpec:
    """Which network the sandbox joins.

    ``none`` (own namespace, loopback only: the default), ``host`` (the host's
    namespace, unsafe), ``bridge`` (the default sandbox bridge) or the name of a
    network made with ``sandbox network create``. ``alias`` is the name other
    members of the network reach this sandbox by.
    """

    mode: str = "none"
    alias: str | None = None
    egress: bool = False
    publish: tuple[Publish, ...] = ()
    #: Ports of the host (its address on the network) this sandbox may connect to;
    #: every other connection from the network to the host is dropped.
    allow_host_ports: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.mode, str) or not _NAME_RE.match(self.mode):
            raise SpecError("network", self.mode, "none, host, bridge or a network name")
        if self.alias is not None and not _HOSTNAME_RE.match(self.alias):
            raise SpecError("network alias", self.alias, "a host name like db or web-1")
        publish = tuple(p if isinstance(p, Publish) else Publish.parse(p) for p in self.publish)
        _set(self, "publish", publish)
        needs = "--network bridge or a named network"
        if self.egress and self.mode in ("none", "host"):
            raise SpecError("egress", self.egress, needs, shown=f"on network {self.mode}")
        if self.publish and self.mode in ("none", "host"):
            raise SpecError("publish", self.publish, needs,
                            shown=f"{' '.join(map(str, publish))} on network {self.mode}")
        _set(self, "allow_host_ports", _check_ports(self.allow_host_ports))
        if self.allow_host_ports and self.mode in ("none", "host"):
            raise SpecError("allow_host_ports", self.allow_host_ports, needs,
                            shown=f"{' '.join(map(str, self.allow_host_ports))} on network {self.mode}")
        ports = [p.host_port for p in publish]
        for port in ports:
            if ports.count(port) > 1:
                raise SpecError("publish", self.publish, "each host port at most once",
                                shown=" ".join(str(p) for p in publish if p.host_port == port))

    @property
    def isolated(self) -> bool:
        """True when the sandbox gets its own network namespace."""
        return self.mode != "host"


def _check_ports(ports: object) -> tuple[int, ...]:
    """Port numbers 1-65535, each once (a single number or string is one port)."""
    accepted = "TCP/UDP port numbers from 1 to 65535"
    given: Iterable[Any] = (ports,) if isinstance(ports, (int, str)) else ports  # type: ignore[assignment]
    try:
        items = tuple(given)
        values = tuple(int(p) for p in items)
    except (TypeError, ValueError):
        raise SpecError("allow_host_ports", ports, accepted) from None
    if any(isinstance(p, bool) or not 0 < v < 65536 for p, v in zip(items, values)):
        raise SpecError("allow_host_ports", ports, accepted)
    return tuple(dict.fromkeys(values))


#: Where a sandbox made with ``root_view`` sees its root filesystem without the mounts on it.
ROOT_VIEW = "/run/sandbox/root"


@dataclass(frozen=True)
class SandboxSpec:
    """Everything needed to create one sandbox. Validated on construction."""

    image: str
    command: tuple[str, ...] = ()  # empty: the image's CMD (after its ENTRYPOINT, as Docker)
    env: Mapping[str, str] = field(default_factory=dict)
    workdir: str | None = None  # None: the image's WORKDIR, else /
    user: str | None = None  # None: the image's USER, else 0:0
    hostname: str = "sandbox"
    name: str | None = None
    mounts: tuple[Mount, ...] = ()
    limits: Limits = field(default_factory=Limits)
    network: NetworkSpec = field(default_factory=NetworkSpec)
    capabilities: tuple[str, ...] | None = None  # None: Docker's default set
    stdin: bytes | None = None
    #: The command gets a pty, made inside the sandbox, as its controlling terminal and
    #: stdio (``sandbox run -t``); what it writes there is its STDOUT.
    tty: bool = False
    #: Its stdin stays open for live input (``Sandbox.write_stdin``; ``sandbox run -i``).
    interactive: bool = False
    #: A host directory for the writable layer's upper dirs instead of the throwaway tmpfs,
    #: so they outlive the sandbox (a build step turns them into a layer; see rootfs.upper_parts).
    #: Empty, owned by the caller (who removes it), on a filesystem overlayfs takes as an upper
    #: (ext4, xfs, tmpfs): best a ``images.layout.work_dir``, which gc removes after a crash.
    #: The disk limit does not apply to it.
    upper_dir: str | None = None
    #: The seccomp profile: "default" (Docker's), "unconfined" (no filter), the absolute
    #: path of a profile in Docker's JSON format (``sandbox.security.profile``), or "nested"
    #: (Docker's default plus what ``fork_nested`` needs, for a command whose nested copies
    #: stack the default: ``fork_nested(seccomp="default")``).
    seccomp: str = "default"
    #: "host": the host's user namespace (root in the sandbox is root on the host, with
    #: Docker's capabilities); "auto": one of its own, root in it a range of host ids.
    #: None: $SANDBOX_USERNS, else "host".
    userns: str | None = None
    #: A cgroup subtree of its own at /sys/fs/cgroup, under its limits, where its processes
    #: make cgroups for their children (``sandbox.delegated_cgroup``: a remote batch's tests).
    #: Its cgroup namespace is then the host's: a process it moves into the subtree must be
    #: seen from there (cgroup v2's ``nsdelegate``).
    delegate_cgroup: bool = False
    #: A read-only view of its root filesystem without the mounts on it, at ROOT_VIEW: the
    #: lowest layer of the root a nested copy of one of its processes makes of its own
    #: (``sandbox.fork_nested(own_root=True)``: a remote batch's tests). A user namespace
    #: cannot take the root itself, whose mounts it may not reveal.
    root_view: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.image, str) or not self.image:
            raise SpecError("image", self.image, "an image name such as busybox or host")
        _set(self, "command", _check_command(self.command))
        _set(self, "env", _check_env(self.env))
        if self.workdir is not None and (not isinstance(self.workdir, str)
                                         or not self.workdir.startswith("/")):
            raise SpecError("workdir", self.workdir, "an absolute container path")
        if self.user is not None and not isinstance(self.user, str):
            _set(self, "user", str(self.user))
        if self.user is not None:
            check_user(self.user)
        if self.upper_dir is not None and (not isinstance(self.upper_dir, str)
                                           or not self.upper_dir.startswith("/")):
            raise SpecError("upper_dir", self.upper_dir, "an absolute host path")
        if not isinstance(self.hostname, str) or not _HOSTNAME_RE.match(self.hostname):
            raise SpecError("hostname", self.hostname, "letters, digits and '-', at most 63")
        check_name(self.name)
        _set(self, "mounts", _check_mounts(self.mounts))
        if isinstance(self.limits, Mapping):
            _set(self, "limits", Limits(**self.limits))
        if isinstance(self.network, str):
            _set(self, "network", NetworkSpec(self.network))
        _set(self, "capabilities", _check_caps(self.capabilities))
        if self.userns is None:
            _set(self, "userns", os.environ.get("SANDBOX_USERNS") or "host")
        _check_security(self.seccomp, self.userns)
        if self.stdin is not None and not isinstance(self.stdin, (bytes, bytearray)):
            raise SpecError("stdin", type(self.stdin).__name__, "bytes or None")
        for flag in ("tty", "interactive", "delegate_cgroup", "root_view"):
            if not isinstance(getattr(self, flag), bool):
                raise SpecError(flag, getattr(self, flag), "true or false")
        if self.stdin is not None and (self.tty or self.interactive):
            raise SpecError("stdin", f"{len(self.stdin)} bytes", "no stdin data with tty or "
                            "interactive: write the input with Sandbox.write_stdin instead",
                            shown=f"{len(self.stdin)} bytes")

    def with_changes(self, **changes: Any) -> "SandboxSpec":
        """A copy with some fields replaced (and validated again)."""
        return replace(self, **changes)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "SandboxSpec":
        """The spec ``to_dict`` gave (stdin, kept there as a length only, is left out)."""
        fields_ = dict(data)
        fields_.pop("stdin", None)
        limits = dict(fields_.get("limits") or {})
        if "ulimits" in limits:
            limits["ulimits"] = tuple(Ulimit(**u) for u in limits["ulimits"])
        network = dict(fields_.get("network") or {})
        network["publish"] = tuple(Publish(**p) for p in network.get("publish", ()))
        fields_.update(
            limits=Limits(**limits), network=NetworkSpec(**network),
            mounts=tuple(Mount(**m) for m in fields_.get("mounts", ())),
            command=tuple(fields_.get("command", ())),
            capabilities=(tuple(fields_["capabilities"])
                          if fields_.get("capabilities") is not None else None))
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in fields_.items() if k in known})

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON (records, job results)."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "stdin":
                value = None if value is None else len(value)
            out[f.name] = _plain(value)
        return out


def check_name(name: object) -> None:
    """A sandbox name: letters, digits, '_', '.', '-' (None: no name)."""
    if name is not None and (not isinstance(name, str) or not _NAME_RE.match(name)):
        raise SpecError("name", name, "letters, digits, '_', '.', '-', at most 63, "
                        "starting with a letter or digit")


def capabilities_from(add: Iterable[str] = (), drop: Iterable[str] = ()) -> tuple[str, ...] | None:
    """The capability set Docker's ``--cap-add``/``--cap-drop`` describe (None: the defaults).

    ``ALL`` in ``drop`` starts from none; names may carry ``CAP_`` and any case.
    The names are checked when the SandboxSpec is made.
    """
    from .linux.caps import CAPABILITIES

    drop_set = {str(c).upper().removeprefix("CAP_") for c in drop}
    add_set = {str(c).upper().removeprefix("CAP_") for c in add}
    if not drop_set and not add_set:
        return None
    base = set() if "ALL" in drop_set else set(DEFAULT_CAPABILITIES) - drop_set
    return tuple(sorted(base | add_set, key=lambda c: CAPABILITIES.get(c, 99)))


def check_user(user: str) -> None:
    """``UID[:GID]`` or ``NAME[:GROUP]``, numeric ids in the kernel's range."""
    accepted = f"UID[:GID] or NAME[:GROUP], numeric ids from 0 to {MAX_ID}"
    match = _USER_RE.match(user)
    if not match:
        raise SpecError("user", user, accepted)
    if any(part and part.isdigit() and int(part) > MAX_ID for part in match.groups()):
        raise SpecError("user", user, accepted)


def _check_security(seccomp: object, userns: object) -> None:
    """A seccomp setting that names a readable, valid profile; a known userns mode."""
    accepted = "default, unconfined, nested or the absolute path of a seccomp profile (Docker's JSON)"
    if not isinstance(seccomp, str) or not (seccomp in ("default", "unconfined", "nested")
                                            or seccomp.startswith("/")):
        raise SpecError("seccomp", seccomp, accepted)
    if seccomp != "unconfined":
        from .security.profile import load

        load(seccomp)  # SpecError naming the file and what is wrong in it
    if userns not in USERNS_MODES:
        where = " (from SANDBOX_USERNS)" if userns == os.environ.get("SANDBOX_USERNS") else ""
        raise SpecError("userns", userns, " or ".join(USERNS_MODES), shown=f"{userns!r}{where}")


def _plain(value: Any) -> Any:
    if hasattr(value, "__dataclass_fields__"):
        return {f.name: _plain(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _check_command(command: object) -> tuple[str, ...]:
    if isinstance(command, str):
        raise SpecError("command", command, "a list of arguments, e.g. ['sh', '-c', 'echo hi']")
    if not isinstance(command, Iterable):
        raise SpecError("command", command, "a list of strings (empty: the image's CMD)")
    args = tuple(command)
    if not all(isinstance(a, str) for a in args):
        raise SpecError("command", command, "a list of strings (empty: the image's CMD)")
    if args and not args[0]:
        raise SpecError("command", command, "a program to run as its first word, "
                        "e.g. busybox -- sh -c 'echo hi'")
    if any("\0" in a for a in args):
        raise SpecError("command", command, "arguments without NUL bytes")
    return args


def _check_env(env: object) -> Mapping[str, str]:
    if not isinstance(env, Mapping):
        raise SpecError("env", env, "a mapping of NAME to value")
    for key, value in env.items():
        if not isinstance(key, str) or not _ENV_KEY_RE.match(key):
            raise SpecError("env name", key, "letters, digits and '_', not starting with a digit")
        if not isinstance(value, str) or "\0" in value:
            raise SpecError(f"env {key}", value, "a string without NUL bytes")
    return dict(env)


def _check_mounts(mounts: Iterable[object]) -> tuple[Mount, ...]:
    result = tuple(m if isinstance(m, Mount) else Mount.parse(str(m)) for m in mounts)
    targets = [m.target for m in result]
    dupes = {t for t in targets if targets.count(t) > 1}
    if dupes:
        raise SpecError("mount target", sorted(dupes)[0], "each target at most once")
    return result


def _check_caps(caps: object) -> tuple[str, ...] | None:
    from .linux.caps import CAPABILITIES

    if caps is None:
        return None
    if isinstance(caps, str):
        caps = [c for c in caps.split(",") if c]
    if not isinstance(caps, Iterable):
        raise SpecError("capabilities", caps, "a list of Linux capability names such as NET_ADMIN "
                        "(or None: Docker's default set)")
    names = []
    for cap in caps:
        name = str(cap).upper().removeprefix("CAP_")
        if name not in CAPABILITIES:
            raise SpecError("capability", cap, "a Linux capability name such as NET_ADMIN")
        names.append(name)
    return tuple(dict.fromkeys(names))
