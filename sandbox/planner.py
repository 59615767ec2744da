"""Compile a SandboxSpec (plus its image, state dir, cgroup and network) into a Plan."""

from __future__ import annotations

import os
from typing import Protocol

from . import linux
from .cgroups import Cgroup
from .cgroups.base import DELEGATED_ENV
from .errors import SetupError, SpecError
from .images import Image
from .linux.caps import mask
from .plan import ExecPlan, Op, Plan, UserNamespace
from .rootfs import rootfs_ops
from .security.filters import filter_for
from .spec import DEFAULT_CAPABILITIES, DEFAULT_PATH, Limits, SandboxSpec
from .units import format_duration, format_size
from .users import resolve_user

#: The size of a sandbox's terminal when none is given (rows, cols), as a VT100's.
DEFAULT_TTY_SIZE = (24, 80)


def check_tty_size(size: object) -> tuple[int, int]:
    """(rows, cols), each 1 to 65535 (SpecError otherwise)."""
    if isinstance(size, (tuple, list)) and len(size) == 2:
        rows, cols = size
        if all(isinstance(n, int) and not isinstance(n, bool) and 0 < n < 65536
               for n in (rows, cols)):
            return int(rows), int(cols)
    raise SpecError("terminal size", size, "(rows, columns), each from 1 to 65535")


class NetworkSteps(Protocol):
    """What a network attachment adds to a plan (``sandbox.network.Attachment``)."""

    @property
    def pre_ops(self) -> tuple[Op, ...]: ...

    @property
    def ops(self) -> tuple[Op, ...]: ...

    @property
    def binds(self) -> tuple[tuple[str, str], ...]: ...

    def describe(self) -> str:
        """What the owner reserves on the host for it, in one line."""
        ...


def unshare_flags(spec: SandboxSpec) -> int:
    """Every namespace but pid (made by the fork), for ``host`` net, and for a sandbox that
    delegates cgroups, cgroup (``SandboxSpec.delegate_cgroup``)."""
    flags = linux.CLONE_NEWNS | linux.CLONE_NEWUTS | linux.CLONE_NEWIPC
    if not spec.delegate_cgroup:
        flags |= linux.CLONE_NEWCGROUP
    if spec.network.isolated:
        flags |= linux.CLONE_NEWNET
    return flags


def environment(spec: SandboxSpec, image: Image) -> dict[str, str]:
    """Image defaults, then PATH and HOSTNAME, then the spec's own values."""
    env = {"PATH": DEFAULT_PATH, **image.env, "HOSTNAME": spec.hostname}
    env.update(spec.env)
    return env


def capabilities(spec: SandboxSpec, *, device_cgroup: bool) -> int:
    """Docker's default set, or the spec's; without a devices cgroup, no MKNOD."""
    if spec.capabilities is not None:
        return mask(spec.capabilities)
    names = [c for c in DEFAULT_CAPABILITIES if device_cgroup or c != "MKNOD"]
    return mask(names)


#: What a sandbox on a terminal runs when neither it nor its image names a command.
DEFAULT_SHELL = ("/bin/sh",)


def command_of(spec: SandboxSpec, image: Image) -> tuple[str, ...]:
    """The argv, as Docker makes it: the image's ENTRYPOINT, then the spec's command or
    else the image's CMD; on a terminal, else /bin/sh."""
    argv = image.config.entrypoint + (spec.command or image.config.cmd)
    if not argv and spec.tty:
        argv = DEFAULT_SHELL
    if not argv:
        raise SpecError("command", (), f"a command (image {image.name} has no CMD or ENTRYPOINT)")
    return argv


def workdir_of(spec: SandboxSpec, image: Image) -> str:
    """The spec's workdir, else the image's WORKDIR, else /."""
    return spec.workdir or image.config.workdir or "/"


def user_of(spec: SandboxSpec, image: Image) -> str:
    """The spec's user, else the image's USER, else 0:0."""
    return spec.user or image.config.user or "0:0"


def resolve_ids(spec: SandboxSpec, image: Image) -> tuple[int, int, tuple[int, ...], str]:
    """uid, gid, groups and home of the user (``user_of``), read from the image's own files.

    Done in the parent, before anything is created, so a bad user costs
    nothing and the container does not read /etc/passwd at every start.
    """
    user = user_of(spec, image)
    key = (image.layers, image.host_dirs, user)
    cached = _IDS.get(key)
    if cached and cached[0] == _identity(cached[1]):
        return cached[2]
    passwd = image.host_path("/etc/passwd") or "/nonexistent"
    group = image.host_path("/etc/group") or "/nonexistent"
    files = (passwd, group)
    seen = _identity(files)
    try:
        uid, gid, groups, home = resolve_user(user, passwd, group)
    except (LookupError, ValueError) as exc:
        raise SetupError(f"user {user}", str(exc)) from exc
    ids = uid, gid, tuple(groups), home
    _IDS[key] = (seen, files, ids)
    return ids


#: (image layers, binds, user) -> (identity of the files read, the files, ids):
#: reused while neither file changes, so a run reads two stats, not two files.
_IDS: dict[tuple, tuple] = {}


def _identity(paths: tuple[str, ...]) -> tuple:
    """What tells whether a file changed: inode, size, mtime (None if missing)."""
    out: list[tuple[int, int, int] | None] = []
    for path in paths:
        try:
            st = os.stat(path)
            out.append((st.st_ino, st.st_size, st.st_mtime_ns))
        except OSError:
            out.append(None)
    return tuple(out)


def build_plan(spec: SandboxSpec, image: Image, sandbox_id: str, state_path: str,
               cgroup: Cgroup | None, *, device_cgroup: bool = True,
               network: NetworkSteps | None = None,
               ids: tuple[int, int, tuple[int, ...], str] | None = None,
               trace: bool = False, userns: UserNamespace | None = None,
               tty_size: tuple[int, int] | None = None) -> Plan:
    """The whole plan for one sandbox: mounts, then hostname, network, workdir.

    The network's ``pre_ops`` run in the host's namespaces before unshare
    (to open a netlink socket there); its ``ops`` inside, after pivot_root;
    its ``binds`` (host file, container path) are bound read-only after the
    spec's own mounts. ``userns``: the range a ``userns="auto"`` sandbox
    leased (required then). The seccomp filter is compiled here (once per
    profile and capability set: ``security.filters``). With ``spec.tty``, the
    command's pty starts at ``tty_size`` (default 24x80).
    """
    if (spec.userns == "auto") != (userns is not None):
        raise SetupError("user namespace", "a sandbox with userns=auto needs a leased uid range")
    keep_caps = capabilities(spec, device_cgroup=device_cgroup)
    hooks = [Op("hostname", (spec.hostname,), f"set hostname {spec.hostname}")]
    if spec.network.isolated:
        hooks.append(Op("loopback_up", (), "bring up lo"))
    if network is not None:
        hooks += list(network.ops)
    workdir = workdir_of(spec, image)
    if workdir != "/":
        hooks.append(Op("makedirs", (workdir,), f"workdir {workdir}"))
    env = environment(spec, image)
    delegated = tuple(cgroup.delegated) if cgroup is not None else ()
    if cgroup is not None and delegated:
        env[DELEGATED_ENV] = cgroup.delegated_env
    exec_plan = ExecPlan(
        argv=command_of(spec, image),
        env=env,
        user=user_of(spec, image),
        workdir=workdir,
        keep_caps=keep_caps,
        rlimits=tuple((u.name, u.soft, u.hard) for u in spec.limits.ulimits),
        ids=ids if ids is not None else resolve_ids(spec, image),
        seccomp=filter_for(spec.seccomp, keep_caps),
        userns=userns,
        tty=(tty_size or DEFAULT_TTY_SIZE) if spec.tty else None,
    )
    host_steps = []
    if cgroup is not None:
        host_steps.append(f"make cgroup {', '.join(cgroup.paths) or '(shared)'} "
                          f"({describe_limits(spec.limits)})")
        if delegated:
            host_steps.append(f"delegate {', '.join(d for d, _ in delegated)} to the sandbox")
    if network is not None:
        host_steps.append(network.describe())
    if userns is not None:
        host_steps.append(f"lease {userns.size} host uids and gids for the user namespace "
                          "(the sandbox entries of /etc/subuid and /etc/subgid)")
    return Plan(
        sandbox_id=sandbox_id,
        cgroup_procs=tuple(cgroup.procs_files) if cgroup is not None else (),
        unshare_flags=unshare_flags(spec),
        ops=tuple(rootfs_ops(spec, image, state_path, network.binds if network else (), userns,
                             delegated)),
        exec=exec_plan,
        hooks=tuple(hooks),
        pre_ops=tuple(network.pre_ops) if network else (),
        trace=trace,
        host_steps=tuple(host_steps),
    )


def describe_limits(limits: Limits) -> str:
    """The limits a cgroup enforces, as words: ``memory 1 GiB, swap off, pids 4096``."""
    parts = [f"memory {format_size(limits.memory)}"]
    if limits.memory is not None:
        parts.append("swap " + (format_size(limits.memory_swap) if limits.memory_swap else "off"))
    parts.append(f"pids {limits.pids or 'unlimited'}")
    if limits.cpus is not None:
        parts.append(f"cpus {limits.cpus:g}")
    if limits.cpuset is not None:
        parts.append(f"cpuset {limits.cpuset}")
    if limits.timeout is not None:
        parts.append(f"killed after {format_duration(limits.timeout)}")
    return ", ".join(parts)
