"""The last walls around a command: its user namespace, then its seccomp filter.

Every route into a container ends with the same two calls, in this order:

- ``enter_user_namespace`` first thing in ``credentials.become`` (a plan
  with a UserNamespace): the process joins the namespace its init made
  (``process.userns``), or the init's through its pidfd (an exec into a
  running container, ``process.enter``: after its terminal is made), or has
  joined it already (``join_user_namespace``: a target forked into a held
  container, after the other namespaces, whose owner is the host);
  then it becomes the plan's user, with capabilities that count only there;
- ``load_seccomp`` last, after no_new_privs and everything else the route
  does, right before the exec (or the Python target's call): from then on
  the filter answers every syscall of the command and what it starts.

The init of a command is the command's parent and stays under the same
filter: a profile must allow what it does after the spawn (wait4, kill,
write, exit_group); Docker's default does.
"""

from __future__ import annotations

import _signal  # signal's C module: no enum wrapping in freshly forked children

from ..plan import ExecPlan
from .fds import STATUS_FD
from .handshake import SETUP_FAILED
from .kernel import Kernel
from .steps import in_step


def enter_user_namespace(plan: ExecPlan, kernel: Kernel) -> None:
    """Join the sandbox's user namespace (``Kernel.userns_fd``), unless this process is
    in it already."""
    if plan.userns is not None and not kernel.in_userns:
        in_step("enter the user namespace", kernel.enter_userns)


def join_user_namespace(plan: ExecPlan, kernel: Kernel, init_pidfd: int) -> None:
    """Join the user namespace of the container's init (``init_pidfd``), after its other
    namespaces: those the host's user namespace owns (the mount and pid ones at least)
    this process can only enter first."""
    if plan.userns is not None:
        in_step("enter namespaces", kernel.join_userns, init_pidfd)


def stay_tied_to_owner(kernel: Kernel) -> None:
    """In an init that changed its credentials: die with its parent again, and end now
    if the owner is gone already (its end of the status pipe is closed).

    A change of the effective or filesystem ids, or of the user namespace,
    clears PR_SET_PDEATHSIG (prctl(2)): becoming the command's user (and
    making a user namespace) would otherwise leave the container running
    after its owner was killed.
    """
    kernel.set_pdeathsig(_signal.SIGKILL)
    if kernel.reader_gone(STATUS_FD):
        kernel.exit(SETUP_FAILED)


def load_seccomp(plan: ExecPlan, kernel: Kernel) -> None:
    """Load the plan's seccomp filter: the last step before exec (no_new_privs is set)."""
    if plan.seccomp is not None:
        in_step("seccomp", kernel.load_seccomp, plan.seccomp.program, plan.seccomp.flags)
        kernel.mark("load the seccomp filter")
