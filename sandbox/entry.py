"""How a process gets into a running sandbox (`sandbox exec`): the sandbox's *entry*.

Every sandbox's record keeps, from its plan, what a process started in it
later needs (``entry_of``): the namespaces its init unshared, its cgroup's
procs files, and how its command was started: environment, user and ids,
working directory, capabilities, rlimits, no_new_privs, the seccomp profile,
the user namespace's range. ``exec_plan`` makes the plan of such a process
(``Plan.enter``), changed only as asked (-e, -w, -u, -t): the same limits,
capabilities and policy as the command, in the same namespaces (its user
namespace too, with the same uid and gid maps) and cgroup. ``find_init``
finds the sandbox's init in its cgroup: pid 1 of a pid namespace one level
below this process's.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from .errors import SpecError, StateError
from .linux.proc import init_of, process_start_time
from .plan import ExecPlan, Plan, UserNamespace
from .security.filters import filter_for
from .spec import _check_command, _check_env


def entry_of(plan: Plan, output_limit: int | None) -> dict[str, Any]:
    """What the record keeps for `sandbox exec` (plain JSON data); ``output_limit``:
    the sandbox's, which its execs keep too."""
    e = plan.exec
    uid, gid, groups, home = e.ids
    return {"unshare_flags": plan.unshare_flags, "cgroup_procs": list(plan.cgroup_procs),
            "output_limit": output_limit,
            "env": dict(e.env), "user": e.user, "ids": [uid, gid, list(groups), home],
            "workdir": e.workdir, "keep_caps": e.keep_caps,
            "rlimits": [list(r) for r in e.rlimits], "no_new_privs": e.no_new_privs,
            "seccomp": e.seccomp.profile if e.seccomp is not None else "unconfined",
            "userns": list(e.userns) if e.userns is not None else None}


def exec_plan(sandbox_id: str, entry: Mapping[str, Any], init: tuple[int, int | None, tuple],
              command: tuple[str, ...] | list[str], *, env: Mapping[str, str] | None = None,
              workdir: str | None = None,
              user: tuple[str, tuple[int, int, tuple[int, ...], str]] | None = None,
              tty_size: tuple[int, int] | None = None) -> Plan:
    """The plan of a process started in the sandbox whose init is ``init`` (pid, start
    time, namespace ids): its command, with ``env`` added, and ``workdir``, ``user``
    (name as given, and its resolved ids) and a terminal of ``tty_size`` if given."""
    argv = _check_command(tuple(command))
    if not argv:
        raise SpecError("command", command, "a command to run in the sandbox")
    if workdir is not None and not workdir.startswith("/"):
        raise SpecError("workdir", workdir, "an absolute container path")
    name, ids = user if user is not None else (entry["user"], entry["ids"])
    uid, gid, groups, home = ids
    exec_ = ExecPlan(
        argv=argv, env={**entry["env"], **_check_env(dict(env or {}))}, user=name,
        workdir=workdir or entry["workdir"], keep_caps=entry["keep_caps"],
        ids=(uid, gid, tuple(groups), home),
        rlimits=tuple(tuple(r) for r in entry["rlimits"]),
        no_new_privs=entry["no_new_privs"], tty=tty_size,
        seccomp=filter_for(entry.get("seccomp", "default"), entry["keep_caps"]),
        userns=user_namespace(entry, init[0]),
    )
    return Plan(sandbox_id=sandbox_id, cgroup_procs=tuple(entry["cgroup_procs"]),
                unshare_flags=entry["unshare_flags"], ops=(), exec=exec_, enter=init)


def user_namespace(entry: Mapping[str, Any], init_pid: int) -> UserNamespace | None:
    """The sandbox's user namespace (its range of host ids), or None if it has none.

    A record written before the range was kept says only ``true``: the range
    is then read from the init's uid_map and gid_map, which its owner wrote.
    """
    kept = entry.get("userns")
    if not kept:
        return None
    if kept is not True:
        return UserNamespace(*kept)
    try:
        with open(f"/proc/{init_pid}/uid_map") as uids, open(f"/proc/{init_pid}/gid_map") as gids:
            (_, uid_base, size), (_, gid_base, _) = (f.read().split() for f in (uids, gids))
    except (OSError, ValueError) as exc:
        raise StateError(f"the sandbox's init (pid {init_pid}) has ended: the sandbox is not "
                         "running") from exc
    return UserNamespace(int(uid_base), int(gid_base), int(size))


def find_init(cgroup_paths: list[str]) -> tuple[int, int | None] | None:
    """(pid, start time) of the sandbox's init, found among its cgroup's processes;
    None when it has none (not started, or ended)."""
    pids: list[int] = []
    for path in cgroup_paths:
        try:
            with open(os.path.join(path, "cgroup.procs")) as f:
                pids += [int(p) for p in f.read().split()]
        except (FileNotFoundError, ValueError):
            continue
    pid = init_of(pids)
    if pid is None:
        return None
    start = process_start_time(pid)
    return (pid, start) if start is not None else None
