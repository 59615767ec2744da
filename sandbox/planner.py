"""Compile a SandboxSpec (plus its image, state dir and cgroup) into a Plan."""

from __future__ import annotations

import os

from . import linux
from .cgroups import Cgroup
from .errors import SetupError, SpecError
from .images import Image
from .process.execute import resolve_user
from .linux.caps import mask
from .plan import ExecPlan, Op, Plan
from .rootfs import rootfs_ops
from .spec import DEFAULT_CAPABILITIES, DEFAULT_PATH, SandboxSpec


def unshare_flags(spec: SandboxSpec) -> int:
    """Every namespace but pid (made by the fork) and, for ``host``, net."""
    flags = linux.CLONE_NEWNS | linux.CLONE_NEWUTS | linux.CLONE_NEWIPC | linux.CLONE_NEWCGROUP
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


def command_of(spec: SandboxSpec, image: Image) -> tuple[str, ...]:
    """The argv, as Docker makes it: the image's ENTRYPOINT, then the spec's command or
    else the image's CMD."""
    argv = image.config.entrypoint + (spec.command or image.config.cmd)
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
    out = []
    for path in paths:
        try:
            st = os.stat(path)
            out.append((st.st_ino, st.st_size, st.st_mtime_ns))
        except OSError:
            out.append(None)
    return tuple(out)


def build_plan(spec: SandboxSpec, image: Image, sandbox_id: str, state_path: str,
               cgroup: Cgroup | None, *, device_cgroup: bool = True,
               network_ops: tuple[Op, ...] = (), network_pre_ops: tuple[Op, ...] = (),
               network_binds: tuple[tuple[str, str], ...] = (),
               ids: tuple[int, int, tuple[int, ...], str] | None = None) -> Plan:
    """The whole plan for one sandbox: mounts, then hostname, network, workdir.

    ``network_pre_ops`` run in the host's namespaces before unshare (e.g. to
    open a netlink socket there); ``network_ops`` run inside, after
    pivot_root; ``network_binds`` (host file, container path) are bound
    read-only after the spec's own mounts.
    """
    hooks = [Op("hostname", (spec.hostname,), f"set hostname {spec.hostname}")]
    if spec.network.isolated:
        hooks.append(Op("loopback_up", (), "bring up lo"))
    hooks += list(network_ops)
    workdir = workdir_of(spec, image)
    if workdir != "/":
        hooks.append(Op("makedirs", (workdir,), f"workdir {workdir}"))
    exec_plan = ExecPlan(
        argv=command_of(spec, image),
        env=environment(spec, image),
        user=user_of(spec, image),
        workdir=workdir,
        keep_caps=capabilities(spec, device_cgroup=device_cgroup),
        rlimits=tuple((u.name, u.soft, u.hard) for u in spec.limits.ulimits),
        ids=ids if ids is not None else resolve_ids(spec, image),
    )
    return Plan(
        sandbox_id=sandbox_id,
        cgroup_procs=tuple(cgroup.procs_files) if cgroup else (),
        unshare_flags=unshare_flags(spec),
        ops=tuple(rootfs_ops(spec, image, state_path, network_binds)),
        exec=exec_plan,
        hooks=tuple(hooks),
        pre_ops=tuple(network_pre_ops),
    )
