"""How a process gets into a running sandbox (`sandbox exec`): the sandbox's *entry*.

Every sandbox's record keeps, from its plan, what a process started in it
later needs (``entry_of``): the namespaces its init unshared, its cgroup's
procs files, and how its command was started: environment, user and ids,
working directory, capabilities, rlimits, no_new_privs, the seccomp profile. ``exec_plan`` makes
the plan of such a process (``Plan.enter``), changed only as asked (-e,
-w, -u, -t): the same limits, capabilities and policy as the command, in
the same namespaces and cgroup. ``find_init`` finds the sandbox's init in
its cgroup: pid 1 of a pid namespace one level below this process's.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from .errors import SpecError, StateError
from .linux.proc import init_of, process_start_time
from .plan import ExecPlan, Plan
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
            "userns": e.userns is not None}


def exec_plan(sandbox_id: str, entry: Mapping[str, Any], init: tuple[int, int | None, tuple],
              command: tuple[str, ...] | list[str], *, env: Mapping[str, str] | None = None,
              workdir: str | None = None,
              user: tuple[str, tuple[int, int, tuple[int, ...], str]] | None = None,
              tty_size: tuple[int, int] | None = None) -> Plan:
    """The plan of a process started in the sandbox whose init is ``init`` (pid, start
    time, namespace ids): its command, with ``env`` added, and ``workdir``, ``user``
    (name as given, and its resolved ids) and a terminal of ``tty_size`` if given."""
    if entry.get("userns"):
        raise StateError(f"sandbox {sandbox_id} runs in a user namespace of its own (--userns=auto): "
                         "`sandbox exec` into such a sandbox is not supported yet")
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
    )
    return Plan(sandbox_id=sandbox_id, cgroup_procs=tuple(entry["cgroup_procs"]),
                unshare_flags=entry["unshare_flags"], ops=(), exec=exec_, enter=init)


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
