"""The last steps before the command runs: who it runs as, with what, where.

``become`` runs in the init, after pivot_root: rlimits (only lowered), the
capability bounding set and sets, the user and groups (resolved from the
image's /etc/passwd and /etc/group by the parent, with ``resolve_user``),
no_new_privs, the working directory. The init then starts the command
(child.spawn_in_path) or forks the Python target.
"""

from __future__ import annotations

import errno
import os
import resource
import stat

TYPE_CHECKING = False  # typing itself is not loaded: the zygote stays small
if TYPE_CHECKING:
    from typing import Any

from .. import linux
from ..linux.caps import last_cap
from ..plan import ExecPlan
from .setup import StepFailed

last_cap()  # read once here, where it is imported: every init and target forked after needs it

RLIMITS = {
    "nofile": resource.RLIMIT_NOFILE, "fsize": resource.RLIMIT_FSIZE, "core": resource.RLIMIT_CORE,
    "nproc": resource.RLIMIT_NPROC, "stack": resource.RLIMIT_STACK,
    "memlock": resource.RLIMIT_MEMLOCK, "cpu": resource.RLIMIT_CPU, "as": resource.RLIMIT_AS,
}


def _lookup(path: str, key: str, by_name: bool) -> list[str] | None:
    """The colon-separated entry for key in passwd/group, or None.

    The file is the image's, read on the host: only a regular file is read
    (an imported image may hold a FIFO there, whose read would never end).
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            return None
        with open(fd, errors="replace") as f:
            for line in f:
                fields = line.rstrip("\n").split(":")
                if len(fields) >= 3 and (fields[0] == key if by_name else fields[2] == key):
                    return fields
    except OSError:
        pass
    return None


def resolve_user(user: str, passwd: str, group_file: str) -> tuple[int, int, list[int], str]:
    """(uid, gid, supplementary gids, home) for ``uid[:gid]`` or ``name[:group]``."""
    name, _, group = user.partition(":")
    entry = _lookup(passwd, name, by_name=not name.isdigit())
    if name.isdigit():
        uid = int(name)
    elif entry:
        uid = int(entry[2])
    else:
        raise LookupError(f"no user {name!r} in the container's /etc/passwd")
    gid = int(entry[3]) if entry and len(entry) > 3 and entry[3].isdigit() else 0
    if group:
        if group.isdigit():
            gid = int(group)
        else:
            gentry = _lookup(group_file, group, by_name=True)
            if not gentry:
                raise LookupError(f"no group {group!r} in the container's /etc/group")
            gid = int(gentry[2])
    home = entry[5] if entry and len(entry) > 5 and entry[5] else "/"
    return uid, gid, [gid], home


def set_rlimits(rlimits: tuple[tuple[str, int, int], ...]) -> None:
    """Lower each rlimit; a hard limit above the current one is clamped to it."""
    for name, soft, hard in rlimits:
        res = RLIMITS[name]
        _, cur_hard = resource.getrlimit(res)
        if cur_hard != resource.RLIM_INFINITY:
            hard = min(hard, cur_hard)
        resource.setrlimit(res, (min(soft, hard), hard))


def become(plan: ExecPlan, sys: Any = linux) -> dict[str, str]:
    """Drop to the plan's user and capabilities; return the final environment."""
    uid, gid, groups, home = plan.ids
    env = dict(plan.env)
    env.setdefault("HOME", home)
    steps = [
        ("rlimits", lambda: set_rlimits(plan.rlimits)),
        ("capabilities", lambda: sys.drop_bounding_caps(plan.keep_caps, last_cap())),
        ("capabilities", sys.clear_ambient_caps),
        (f"user {plan.user}", lambda: (os.setgroups(groups), os.setgid(gid), os.setuid(uid))),
        ("capabilities", lambda: uid == 0 and sys.set_caps(plan.keep_caps, plan.keep_caps, 0)),
        ("no_new_privs", lambda: plan.no_new_privs and sys.set_no_new_privs()),
        (f"workdir {plan.workdir}", lambda: os.chdir(plan.workdir)),
    ]
    for step, action in steps:
        try:
            action()
        except OSError as exc:
            raise StepFailed(step, exc) from exc
    return env


def exit_status_for(exc: OSError) -> int:
    """Docker's statuses: 127 not found, 126 found but not executable."""
    return 127 if exc.errno in (errno.ENOENT, errno.ENOTDIR) else 126
