"""The process of a Python target: a fork of the caller that runs a callable in the container.

A target (a callable of the caller's: a pytest test, say) needs the
caller's memory, so its process is a fork of the caller, made one of two ways:

- ``child_of_init``: a process's first target. The init was forked from the
  caller (``launch_direct``), so it is a copy of the caller too, and forks
  the target itself once the container is ready.
- ``enter_held``: later targets. A small init from the zygote holds the
  container ready (``init.hold``); the owner (or its fork server) forks the
  target straight into the init's pid namespace (``launch_held``), and the
  target then joins the cgroup, waits for HELD, enters the other namespaces
  with one setns and becomes the plan's user:

    owner                                  held init (pid 1, plan with hold)
    hand over the plan, make the cgroup,
    "go"                                   mounts, pivot_root, hooks ...
    setns(init's pidfd, CLONE_NEWPID),
    fork ──► target process                "held" on the socket, then reaps
             join the cgroup                orphans until the owner closes
             wait for "held"                its end of the socket
             setns(pidfd, mnt|uts|ipc|net|cgroup)
             become the plan's user
             "started" on the status pipe
             call the target, exit with its status
    waitpid (its child): the exit status;
    close the socket: the init exits and the pid namespace with it

Either way the target runs as the plan's user with the plan's environment,
and its return value is the exit status. Everything a target does between
its fork and its call is paid mostly in copied pages (see docs/engine.md).
"""

from __future__ import annotations

import gc
import os

from ..plan import Plan
from . import confine, handshake
from . import fds as fdmod
from .credentials import become
from .fds import STATUS_FD, ChildFds
from .handshake import HELD, SETUP_FAILED, fail_setup
from .kernel import Kernel
from .steps import StepFailed, in_step

TYPE_CHECKING = False  # typing itself is not loaded: the zygote stays small

if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import NoReturn

    Target = Callable[[], "int | None"]


class InitFailed(Exception):
    """The init closed its socket before the container was ready (it reported why)."""


def child_of_init(plan: Plan, kernel: Kernel, target: Target) -> int:
    """In the init: fork the target's process; its pid once it runs as the plan's user.

    A failure before the target is called (a workdir it cannot enter) comes
    back on a pipe and is reported as the init's own.
    """
    err_r, err_w = kernel.pipe()
    pid = kernel.fork()
    if pid == 0:
        kernel.close(err_r)
        try:
            kernel.reset_signals()
            kernel.set_environ(become(plan.exec, kernel))
            confine.load_seccomp(plan.exec, kernel)
        except StepFailed as exc:
            handshake.send_error(kernel, err_w, exc.step, exc.error)
            kernel.exit(SETUP_FAILED)
        kernel.close(err_w)  # the "exec" happened: the init stops waiting
        run_target(kernel, target)
    kernel.close(err_w)
    report = b""
    while chunk := kernel.read(err_r, 4096):
        report += chunk
    kernel.close(err_r)
    if report:
        kernel.waitpid(pid)
        kernel.write(STATUS_FD, report)
        kernel.exit(SETUP_FAILED)
    return pid


def enter_held(plan: Plan, fds: ChildFds, target: Target, init_pidfd: int, sock_fd: int,
               kernel: Kernel) -> NoReturn:
    """In a target forked into a held container: enter it, become its user, run the target."""
    gc.disable()  # a collection would touch, and so copy, the parent's whole heap
    try:
        _enter(plan, fds, init_pidfd, sock_fd, kernel)
    except InitFailed:
        kernel.exit(SETUP_FAILED)  # the init reported why
    except BaseException as exc:
        fail_setup(kernel, exc)
    run_target(kernel, target)


def _enter(plan: Plan, fds: ChildFds, init_pidfd: int, sock_fd: int, kernel: Kernel) -> None:
    """Everything between the fork and the target: after it, only 0, 1 and 2 are open."""
    init_pidfd, sock_fd = (kernel.dup_above(fd, STATUS_FD + 1) for fd in (init_pidfd, sock_fd))
    in_step("start", fdmod.arrange, kernel, fds, (init_pidfd, sock_fd))
    kernel.setsid()
    in_step("join cgroup", kernel.join_cgroup, plan.cgroup_procs)
    _wait_until_held(kernel, sock_fd)
    in_step("enter namespaces", kernel.setns, init_pidfd, plan.unshare_flags)
    confine.join_user_namespace(plan.exec, kernel, init_pidfd)
    fdmod.close_all_but(kernel, (), above=STATUS_FD)
    kernel.reset_signals()
    kernel.set_environ(become(plan.exec, kernel))
    confine.load_seccomp(plan.exec, kernel)
    handshake.send_started(kernel, STATUS_FD, os.getpid())
    kernel.close(STATUS_FD)


def _wait_until_held(kernel: Kernel, sock_fd: int) -> None:
    """Block until the init has the container ready; InitFailed if it ended instead."""
    try:
        reply = kernel.read(sock_fd, 64)
    except OSError as exc:
        raise InitFailed(str(exc)) from exc
    if reply != HELD:
        raise InitFailed(repr(reply))


def run_target(kernel: Kernel, target: Target) -> NoReturn:
    """Call the target; exit with its status (a traceback on stderr and 1 if it raised).

    Never returns, whatever happens: this process is a copy of its caller,
    which must not go on twice. Python's sys.stdout and sys.stderr are the
    caller's objects; if they wrote elsewhere (a test runner's capture) they
    fail here, and the traceback goes to fd 2 directly.
    """
    code = 1
    try:
        try:
            result = target()
            code = result if isinstance(result, int) else 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        except BaseException:
            _show_traceback(kernel)
        fdmod.flush_stdio()
    finally:
        kernel.exit(code)


def _show_traceback(kernel: Kernel) -> None:
    import traceback

    try:
        kernel.write(2, traceback.format_exc().encode("utf-8", "replace"))
    except OSError:
        pass
