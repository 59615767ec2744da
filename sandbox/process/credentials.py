"""Who the command runs as, with what: the last steps before it starts.

``become`` runs after pivot_root, in the init (before it spawns the command)
or in a Python target's process: the user namespace (``confine``), if the
plan has one, then rlimits (only ever lowered), the capability
bounding set and sets, the user and groups (resolved from the image's files
by the parent: ``sandbox.users``), no_new_privs and the working directory.
It returns the command's environment. Its callers load the seccomp filter
after it (``confine.load_seccomp``), the last step before the command.
"""

from __future__ import annotations

from ..linux.caps import last_cap
from ..plan import ExecPlan
from .confine import enter_user_namespace
from .kernel import Kernel
from .steps import in_step

last_cap()  # read once where this is imported: every init and target forked after needs it


def become(plan: ExecPlan, kernel: Kernel) -> dict[str, str]:
    """Drop to the plan's user and capabilities; return the command's environment."""
    enter_user_namespace(plan, kernel)  # the ids and capabilities below then count there only
    uid, gid, groups, home = plan.ids
    env = dict(plan.env)
    env.setdefault("HOME", home)
    for name, soft, hard in plan.rlimits:
        in_step("rlimits", kernel.set_rlimit, name, soft, hard)
    in_step("capabilities", kernel.drop_bounding_caps, plan.keep_caps, last_cap())
    in_step("capabilities", kernel.clear_ambient_caps)
    in_step(f"user {plan.user}", kernel.set_ids, uid, gid, tuple(groups))
    # said, not left to setuid(2): in a user namespace entered as the host's root,
    # a change to a non-root user does not clear the capabilities (capabilities(7))
    caps = plan.keep_caps if uid == 0 else 0
    in_step("capabilities", kernel.set_caps, caps, caps, 0)
    if plan.no_new_privs:
        in_step("no_new_privs", kernel.set_no_new_privs)
    in_step(f"workdir {plan.workdir}", kernel.chdir, plan.workdir)
    return env

