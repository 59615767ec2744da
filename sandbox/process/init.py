"""The container's init: pid 1 of its pid namespace, from the first step to the exit.

Every start route ends here. A freshly forked init (``fresh_main``: the
direct route and the zygote's) joins the sandbox's cgroup, unshares the
namespaces and walks the plan itself; a spare (``spare.spare_main``) did
part of that ahead. Then ``finish``: the hooks (hostname, network, workdir),
the name ``sandbox-init``, and either

- a command: the init becomes the command's user, is made non-dumpable and
  posix_spawns it (``start_command``), or forks the Python target that runs
  in its place (a process's first target: ``target.child_of_init``); it then
  reaps zombies and forwards SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1,
  SIGUSR2 and SIGWINCH to the command until the command exits, reports its
  wait status and exits, which ends whatever is left of the namespace; or
- a *hold* plan: no command; it says HELD on its socket and reaps until the
  owner, which forks the target into the container itself (``launch_held``),
  closes that socket.

Failures are reported on the status pipe by step (``handshake``), and every
path ends in ``Kernel.exit``.
"""

from __future__ import annotations

import _signal  # signal's C module: no enum wrapping in freshly forked children
import errno
import gc
import os

from ..linux.proc import process_alive
from ..plan import ExecPlan, Plan
from . import confine, handshake, steps
from . import fds as fdmod
from .console import open_console, spawn_on_terminal
from .credentials import become
from .fds import STATUS_FD, ChildFds
from .handshake import HELD, SETUP_FAILED, fail_setup
from .kernel import Kernel
from .steps import in_step
from .target import child_of_init

TYPE_CHECKING = False  # typing itself is not loaded: the zygote stays small

if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import NoReturn

    Target = Callable[[], "int | None"]

NAME = "sandbox-init"
FORWARDED = (_signal.SIGTERM, _signal.SIGINT, _signal.SIGHUP, _signal.SIGQUIT,
             _signal.SIGUSR1, _signal.SIGUSR2, _signal.SIGWINCH)


def fresh_main(plan: Plan, fds: ChildFds, parent: tuple[int, int | None], kernel: Kernel,
               target: Target | None = None) -> NoReturn:
    """The whole life of an init forked for this plan: set up, run, report, exit.

    ``parent`` (pid, start time) is the process it must die with; ``target``
    a Python callable run in place of the command.
    """

    gc.disable()  # a collection would touch, and so copy, the parent's whole heap
    kernel.mark("forked")

    def setup_and_run() -> int:
        console = in_step("start", fdmod.arrange, kernel, fds)
        in_step("start", leave_parent, kernel, parent)
        in_step("join cgroup", kernel.join_cgroup, plan.cgroup_procs)
        kernel.mark("join cgroup")
        steps.run(plan.pre_ops, kernel)
        in_step("unshare namespaces", kernel.unshare, plan.unshared_first)
        kernel.mark("unshare")
        steps.run(plan.ops, kernel)
        return finish(plan, kernel, target, console_fd=console)

    run_and_report(kernel, setup_and_run)


def leave_parent(kernel: Kernel, parent: tuple[int, int | None]) -> None:
    """Die with the parent (checked once, for a parent that died before the prctl), own session."""
    kernel.set_pdeathsig(_signal.SIGKILL)
    if not process_alive(*parent):
        kernel.exit(SETUP_FAILED)
    kernel.setsid()


def finish(plan: Plan, kernel: Kernel, target: Target | None = None,
           forward: Forwarder | None = None, hold_fd: int = -1, console_fd: int = -1) -> int:
    """After the mounts: the hooks, then the command; returns its wait status.

    A hold plan starts no command: the init holds the ready container for
    the owner's target (``hold``) and never returns. ``console_fd``: the
    console socket of a plan whose command has a terminal.
    """
    steps.run(plan.hooks, kernel)
    if plan.exec.userns is not None:
        in_step("make the user namespace", kernel.reap_userns_helper)  # before any fork: pid 2
        kernel.mark("reap the user namespace's helper")
    kernel.close_host_netlink()  # if no step used it: it must never reach the command
    kernel.set_name(NAME)
    kernel.set_cmdline(NAME)  # not the host's paths and command line, in /proc/1/cmdline
    if plan.hold:
        confine.enter_user_namespace(plan.exec, kernel)  # the target joins it through our pidfd
        hold(kernel, hold_fd)
    return start_command(plan, kernel, target, forward or install_forwarder(kernel), console_fd)


def hold(kernel: Kernel, sock_fd: int) -> NoReturn:
    """Be the init of a container whose command the owner forks into it.

    Says HELD on the socket (the owner's forked target reads it, then
    enters the namespaces), reaps whatever the target leaves to pid 1, and
    exits when the owner closes its end: the target has ended, or the owner
    is gone. The target's exit status reaches the owner directly (it is the
    owner's child), so nothing is reported here.
    """
    fdmod.null_stdio(kernel)
    kernel.set_signal(_signal.SIGCHLD, lambda _signum, _frame: kernel.reap_exited())
    kernel.write(sock_fd, HELD)
    kernel.mark("held")
    while kernel.read(sock_fd, 64):
        pass
    kernel.exit(0)


def run_and_report(kernel: Kernel, setup_and_run: Callable[[], int]) -> NoReturn:
    """Run the setup and the command; report a failure (by step) or the exit status; exit."""
    try:
        status = setup_and_run()
    except BaseException as exc:
        fail_setup(kernel, exc)
    handshake.send(kernel, STATUS_FD, "exit", status=status)
    kernel.exit(0)


class Forwarder:
    """The init's handler for FORWARDED signals: passes each on to the command,
    holding those that come before the command exists."""

    def __init__(self, kernel: Kernel) -> None:
        self.kernel = kernel
        self.child: int | None = None
        self.pending: list[int] = []

    def __call__(self, signum: int, _frame: object) -> None:
        if self.child is None:
            self.pending.append(signum)
            return
        try:
            self.kernel.kill(self.child, signum)
        except ProcessLookupError:
            pass

    def attach(self, child: int) -> None:
        """The command exists now: deliver what arrived before it did."""
        self.child = child
        for signum in self.pending:
            self(signum, None)
        self.pending.clear()


def install_forwarder(kernel: Kernel) -> Forwarder:
    """Handlers for FORWARDED signals, in place before the command exists: a pid-1
    init without a handler never sees SIGTERM, so one sent as the command
    starts would be lost."""
    forward = Forwarder(kernel)
    for sig in FORWARDED:
        kernel.set_signal(sig, forward)
    return forward


def start_command(plan: Plan, kernel: Kernel, target: Target | None, forward: Forwarder,
                  console_fd: int = -1, null: int = -1) -> int:
    """Start the command (or the target); report it started; be init until it exits."""
    if target is not None:
        pid = child_of_init(plan, kernel, target)
    else:
        pid = spawn_command(plan.exec, kernel, console_fd)
    forward.attach(pid)
    kernel.mark("command started")
    extra = {"trace": kernel.trace} if kernel.trace else {}
    handshake.send(kernel, STATUS_FD, "started", pid=pid, **extra)
    return reap_until(kernel, pid, null)


def spawn_command(plan: ExecPlan, kernel: Kernel, console_fd: int = -1) -> int:
    """Become the plan's user here, then start the command: posix_spawn, or on its
    terminal (``console``) when the plan has one.

    The process keeps the command's own credentials and capabilities and is
    made non-dumpable, so the command cannot ptrace it.
    """
    peer = -1
    if plan.tty:
        peer = in_step("open a terminal", open_console, plan, kernel, console_fd)
        kernel.mark("open a terminal")
    env = become(plan, kernel)
    kernel.set_dumpable(False)
    confine.stay_tied_to_owner(kernel)
    kernel.mark("become the user")
    confine.load_seccomp(plan, kernel)  # last: the filter holds from the spawn on
    argv = plan.argv
    try:
        path = find_in_path(argv[0], env.get("PATH", ""))
        if peer >= 0:
            return spawn_on_terminal(kernel, peer, path, argv, env)
        return kernel.spawn(path, argv, env)
    except OSError as exc:
        handshake.send_error(kernel, STATUS_FD, "exec", exc, command=argv[0])
        kernel.exit(exit_status_for(exc))


def find_in_path(name: str, path: str) -> str:
    """The file execvp would run for name, searched in the *container's* PATH;
    OSError with its errno if none. Stats first: a failed spawn costs a vfork."""
    if "/" in name:
        return name
    denied = None
    for directory in (path or "/usr/bin:/bin").split(":"):
        candidate = os.path.join(directory or ".", name)
        if os.path.isfile(candidate):
            if os.access(candidate, os.X_OK):
                return candidate
            denied = denied or candidate
    if denied:
        raise PermissionError(errno.EACCES, "permission denied", denied)
    raise FileNotFoundError(errno.ENOENT, "not found in PATH", name)


def exit_status_for(exc: OSError) -> int:
    """Docker's statuses: 127 not found, 126 found but not executable."""
    return 127 if exc.errno in (errno.ENOENT, errno.ENOTDIR) else 126


def reap_until(kernel: Kernel, child: int, null: int = -1) -> int:
    """Reap every process until ``child`` exits; its wait status. ``null``: a /dev/null
    opened before (one in the container could be anything by now)."""
    fdmod.null_stdio(kernel, null)
    while True:
        try:
            pid, status = kernel.wait_any()
        except ChildProcessError:
            return 0
        if pid == child:
            return status
