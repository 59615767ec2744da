"""The container's first process: set up, start the command, be its init.

It is forked as pid 1 of a new pid namespace (by ``spawner``), then:
joins the sandbox's cgroup, unshares the other namespaces, walks the plan,
forks the command, and stays as a small init that reaps zombies and forwards
SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2 and SIGWINCH to it. When
the command exits, the init reports its status and exits; the kernel then
kills whatever else is left in the pid namespace.

This function never returns: every path ends in ``os._exit``.
"""

from __future__ import annotations

import _signal  # signal's C module, for forked children: see reset_signals
import gc
import os
import signal
import time

TYPE_CHECKING = False  # typing itself is not loaded: the zygote stays small
if TYPE_CHECKING:
    from typing import Callable, NoReturn

    Target = Callable[[], "int | None"]

from .. import linux
from ..plan import Plan
from ..linux.proc import process_alive
from . import handshake
from .fork import reap_exited_children
from .execute import become, exit_status_for
from . import setup
from .setup import StepFailed, run_ops

STATUS_FD = 3
FORWARDED = tuple(int(s) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT,
                                    signal.SIGUSR1, signal.SIGUSR2, signal.SIGWINCH))
SETUP_FAILED = 125
#: Every signal the command starts with at its default disposition.
DEFAULT_SIGNALS = tuple(int(s) for s in signal.valid_signals()
                        if s not in (signal.SIGKILL, signal.SIGSTOP) and s < signal.SIGRTMIN)


def arrange_fds(status_fd: int, stdin_fd: int, stdout_fd: int, stderr_fd: int,
                keep: tuple[int, ...] = ()) -> None:
    """stdin/stdout/stderr on 0/1/2, the status pipe on 3, every other fd but ``keep`` closed."""
    high = [os.dup(fd) for fd in (stdin_fd, stdout_fd, stderr_fd, status_fd)]
    moved = [fd if fd > STATUS_FD else os.dup(fd) for fd in high]
    for target, fd in enumerate(moved[:3]):
        os.dup2(fd, target, inheritable=True)
    os.dup2(moved[3], STATUS_FD, inheritable=False)
    close_all_but(keep, above=STATUS_FD)


def close_all_but(keep: tuple[int, ...], above: int) -> None:
    """Close every fd greater than ``above`` except those in ``keep``."""
    low = above + 1
    for fd in sorted(k for k in keep if k > above):
        os.closerange(low, fd)
        low = fd + 1
    os.closerange(low, os.sysconf("SC_OPEN_MAX"))


def in_step(step: str, action: Callable[..., object], *args: object) -> None:
    """Call action; any failure becomes StepFailed naming the step."""
    try:
        action(*args)
    except Exception as exc:  # noqa: BLE001 - reported to the parent by name
        raise StepFailed(step, exc) from exc


def leave_parent(parent: tuple[int, int | None]) -> None:
    """Die with the parent (checked once, for a parent that died before the prctl), own session."""
    linux.set_pdeathsig(_signal.SIGKILL)
    if not process_alive(*parent):
        os._exit(SETUP_FAILED)
    os.setsid()


def join_cgroup(procs_files: tuple[str, ...], pid: int = 0) -> None:
    """Move process ``pid`` (0: this one) into the sandbox's cgroup(s), one cgroup.procs
    file per v1 hierarchy; an OSError names the file the kernel refused."""
    data = str(pid).encode()
    for procs in procs_files:
        fd = os.open(procs, os.O_WRONLY | os.O_CLOEXEC)
        try:
            try:
                os.write(fd, data)
            except OSError as exc:
                raise OSError(exc.errno, exc.strerror, procs) from exc
        finally:
            os.close(fd)


def container_main(plan: Plan, fds: tuple[int, int, int, int],
                   parent: tuple[int, int | None], target: Target | None = None) -> NoReturn:
    """Run in the forked child; ``fds`` = (status, stdin, stdout, stderr).

    With ``target`` (a callable returning an exit status), the command's
    process calls it instead of exec'ing ``plan.exec.argv``.
    """
    gc.disable()  # a collection here would touch, and so copy, the parent's whole heap
    if os.environ.get("SANDBOX_TRACE") == "1":
        setup.TRACE = [("forked", time.perf_counter())]

    def steps() -> int:
        in_step("start", arrange_fds, *fds)
        in_step("start", leave_parent, parent)
        in_step("join cgroup", join_cgroup, plan.cgroup_procs)
        setup.mark("join cgroup")
        run_ops(plan.pre_ops)
        in_step("unshare namespaces", linux.unshare, plan.unshare_flags)
        setup.mark("unshare")
        run_ops(plan.ops)
        return finish_setup(plan, target)

    run_and_report(steps)


def finish_setup(plan: Plan, target: Target | None = None,
                 forward: "Forwarder | None" = None, hold_fd: int = -1) -> int:
    """After the mounts: the hooks, then the command; returns its wait status.

    A ``hold`` plan starts no command: the init holds the ready container
    for the owner's target (see ``hold``) and never returns.
    """
    run_ops(plan.hooks)
    setup.close_host_netlink()  # if no step used it: it must never reach the command
    linux.set_name("sandbox-init")
    linux.set_cmdline("sandbox-init")  # not the host's paths and command line, in /proc/1/cmdline
    if plan.hold:
        hold(hold_fd)
    return start_command(plan, target, forward or install_forwarder())


#: What a held init sends its owner's socket once the container is ready.
HELD = b"held"


def hold(sock_fd: int) -> NoReturn:
    """Be the init of a container whose command the owner forks into it.

    Says HELD on the socket (the owner's forked target reads it, then
    enters the namespaces), reaps whatever the target leaves to pid 1, and
    exits when the owner closes its end: the target has ended, or the owner
    is gone. Its exit ends the pid namespace and everything left in it.
    The target's exit status reaches the owner directly (it is the owner's
    child), so nothing is reported here.
    """
    null = os.open("/dev/null", os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.close(null)
    _signal.signal(_signal.SIGCHLD, lambda _signum, _frame: reap_exited_children())
    os.write(sock_fd, HELD)
    setup.mark("held")
    while os.read(sock_fd, 64):
        pass
    os._exit(0)


def run_and_report(steps: Callable[[], int]) -> NoReturn:
    """Run the setup and the command; report a failure (by step) or the exit status; exit."""
    try:
        status = steps()
    except BaseException as exc:  # noqa: BLE001 - reported to the parent by name
        fail_setup(exc)
    handshake.send(STATUS_FD, "exit", status=status)
    os._exit(0)


def fail_setup(exc: BaseException) -> NoReturn:
    """Report a failed setup on the status pipe (by step; "start" if unnamed) and exit."""
    if isinstance(exc, StepFailed):
        handshake.send_error(STATUS_FD, exc.step, exc.error)
    else:
        handshake.send_error(STATUS_FD, "start", exc)
    os._exit(SETUP_FAILED)


def install_forwarder() -> "Forwarder":
    """The init's handlers for FORWARDED signals, holding them until the command exists."""
    forward = Forwarder()
    for sig in FORWARDED:
        _signal.signal(sig, forward)  # as in reset_signals: no enum wrapping
    return forward


def start_command(plan: Plan, target: Target | None, forward: "Forwarder") -> int:
    """Start the command (or target); report it started; be init until it exits.

    The forwarding handlers (``forward``) are in place before the command
    exists: a pid-1 init without a handler never sees SIGTERM, so a signal
    sent as soon as the command runs would be lost.
    """
    if target is not None:
        pid = _fork_target(plan, target)
    else:
        pid = _spawn_command(plan)
    forward.attach(pid)
    setup.mark("command started")
    handshake.send(STATUS_FD, "started", pid=pid, **({"trace": setup.TRACE} if setup.TRACE else {}))
    return init_loop(pid)


class Forwarder:
    """The init's handler for FORWARDED signals: passes each on to the command."""

    def __init__(self) -> None:
        self.child: int | None = None
        self.pending: list[int] = []

    def __call__(self, signum: int, _frame: object) -> None:
        if self.child is None:
            self.pending.append(signum)
            return
        try:
            os.kill(self.child, signum)
        except ProcessLookupError:
            pass

    def attach(self, child: int) -> None:
        """The command exists now: deliver what arrived before it did."""
        self.child = child
        for signum in self.pending:
            self(signum, None)
        self.pending.clear()


def _spawn_command(plan: Plan) -> int:
    """Become the plan's user here, then posix_spawn the command.

    posix_spawn (vfork + exec in glibc) costs far less than forking this
    Python process again. The init keeps the command's own credentials and
    capabilities and is made non-dumpable, so the command cannot ptrace it.
    """
    env = become(plan.exec)
    linux.set_dumpable(False)
    setup.mark("become the user")
    try:
        return spawn_in_path(plan.exec.argv, env)
    except OSError as exc:
        handshake.send_error(STATUS_FD, "exec", exc, command=plan.exec.argv[0])
        os._exit(exit_status_for(exc))


def spawn_in_path(argv: tuple[str, ...], env: dict[str, str]) -> int:
    """posix_spawn argv[0], searched in the *container's* PATH as execvp would.

    The search stats each candidate first: a failed spawn costs a vfork.
    """
    return os.posix_spawn(find_in_path(argv[0], env.get("PATH", "")), list(argv), env,
                          setsigdef=DEFAULT_SIGNALS, setsigmask=())


def find_in_path(name: str, path: str) -> str:
    """The file execvp would run for name; raises OSError with its errno if none."""
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
        raise PermissionError(13, "permission denied", denied)
    raise FileNotFoundError(2, "not found in PATH", name)


def _fork_target(plan: Plan, target: Target) -> int:
    """Fork this process to run a Python target; wait until it is ready."""
    err_r, err_w = os.pipe2(os.O_CLOEXEC)
    pid = os.fork()
    if pid == 0:
        _target_child(plan, target, err_r, err_w)
    os.close(err_w)
    report = b""
    while chunk := os.read(err_r, 4096):
        report += chunk
    os.close(err_r)
    if report:
        os.waitpid(pid, 0)
        os.write(STATUS_FD, report)
        os._exit(SETUP_FAILED)
    return pid


def _target_child(plan: Plan, target: Target, err_r: int, err_w: int) -> NoReturn:
    """In a fork of the caller: become the plan's user, call the target, exit with its status."""
    try:
        os.close(err_r)
        reset_signals()
        replace_environ(become(plan.exec))
        os.close(err_w)  # the "exec" happened: the init stops waiting
    except StepFailed as exc:
        handshake.send_error(err_w, exc.step, exc.error)
        os._exit(SETUP_FAILED)
    run_target(target)


def run_target(target: Target) -> NoReturn:
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
        except BaseException:  # noqa: BLE001 - shown on the sandbox's stderr
            _show_traceback()
        _flush_stdio()
    finally:
        os._exit(code)


def _show_traceback() -> None:
    import traceback

    text = traceback.format_exc()
    try:
        os.write(2, text.encode("utf-8", "replace"))
    except OSError:
        pass


def _flush_stdio() -> None:
    import sys

    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:  # noqa: BLE001 - a stream of the caller's that cannot write here
            pass


def reset_signals() -> None:
    """Default dispositions and an empty mask: Python ignores SIGPIPE, and the
    zygote ignores SIGINT; exec would pass both ignores on to the command.

    Through ``_signal`` with plain numbers: ``signal``'s wrappers turn each
    value into an enum member, and in a freshly forked child that machinery
    costs ~50 copied pages (0.3 ms on small VMs) for these few lines.
    """
    for sig in DEFAULT_SIGNALS:
        if _signal.getsignal(sig) != _signal.SIG_DFL:  # None: set outside Python
            try:
                _signal.signal(sig, _signal.SIG_DFL)
            except (OSError, ValueError):
                pass
    _signal.pthread_sigmask(_signal.SIG_SETMASK, ())


def replace_environ(env: dict[str, str]) -> None:
    """Make os.environ (and the C environment) exactly ``env``, changing only what differs."""
    for name in [n for n in os.environ if n not in env]:
        del os.environ[name]
    for name, value in env.items():
        if os.environ.get(name) != value:
            os.environ[name] = value


def init_loop(child: int) -> int:
    """Reap every process until ``child`` exits (signals are forwarded meanwhile)."""
    null = os.open("/dev/null", os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.close(null)
    while True:
        try:
            pid, status = os.waitpid(-1, 0)
        except ChildProcessError:
            return 0
        if pid == child:
            return status
