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

import os
import signal
from typing import Callable, NoReturn

from .. import linux
from ..plan import Plan
from ..state import process_alive
from . import handshake
from .execute import become, exec_command, exit_status_for
from .setup import StepFailed, run_ops

STATUS_FD = 3
FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT,
             signal.SIGUSR1, signal.SIGUSR2, signal.SIGWINCH)
SETUP_FAILED = 125
Target = Callable[[], "int | None"]


def arrange_fds(status_fd: int, stdin_fd: int, stdout_fd: int, stderr_fd: int) -> None:
    """stdin/stdout/stderr on 0/1/2, the status pipe on 3, every other fd closed."""
    high = [os.dup(fd) for fd in (stdin_fd, stdout_fd, stderr_fd, status_fd)]
    moved = [fd if fd > STATUS_FD else os.dup(fd) for fd in high]
    for target, fd in enumerate(moved[:3]):
        os.dup2(fd, target, inheritable=True)
    os.dup2(moved[3], STATUS_FD, inheritable=False)
    os.closerange(STATUS_FD + 1, os.sysconf("SC_OPEN_MAX"))


def container_main(plan: Plan, fds: tuple[int, int, int, int],
                   parent: tuple[int, int | None], target: Target | None = None) -> NoReturn:
    """Run in the forked child; ``fds`` = (status, stdin, stdout, stderr).

    With ``target`` (a callable returning an exit status), the command's
    process calls it instead of exec'ing ``plan.exec.argv``.
    """
    step = "start"
    try:
        arrange_fds(*fds)
        linux.set_pdeathsig(signal.SIGKILL)
        if not process_alive(*parent):
            os._exit(SETUP_FAILED)
        os.setsid()
        step = "join cgroup"
        for procs in plan.cgroup_procs:
            with open(procs, "w") as f:
                f.write("0")
        run_ops(plan.pre_ops)
        step = "unshare namespaces"
        linux.unshare(plan.unshare_flags)
        run_ops(plan.ops)
        run_ops(plan.hooks)
        linux.set_name("sandbox-init")
        status = start_command(plan, target)
    except StepFailed as exc:
        handshake.send_error(STATUS_FD, exc.step, exc.error)
        os._exit(SETUP_FAILED)
    except BaseException as exc:  # noqa: BLE001 - reported to the parent by name
        handshake.send_error(STATUS_FD, step, exc)
        os._exit(SETUP_FAILED)
    handshake.send(STATUS_FD, "exit", status=status)
    os._exit(0)


def start_command(plan: Plan, target: Target | None = None) -> int:
    """Fork and exec the command; report it started; be init until it exits."""
    err_r, err_w = os.pipe2(os.O_CLOEXEC)
    pid = os.fork()
    if pid == 0:
        if target is not None:
            _target_child(plan, target, err_r, err_w)
        _command_child(plan, err_r, err_w)
    os.close(err_w)
    report = b""
    while chunk := os.read(err_r, 4096):
        report += chunk
    os.close(err_r)
    if report:
        os.waitpid(pid, 0)
        os.write(STATUS_FD, report)
        os._exit(SETUP_FAILED)
    handshake.send(STATUS_FD, "started", pid=pid)
    return init_loop(pid)


def _command_child(plan: Plan, err_r: int, err_w: int) -> NoReturn:
    """In the command's process: become the user, exec; report failure on err_w."""
    try:
        os.close(err_r)
        reset_signals()
        env = become(plan.exec)
        os.closerange(STATUS_FD, err_w)
        exec_command(plan.exec, env)
    except StepFailed as exc:
        handshake.send_error(err_w, exc.step, exc.error)
        os._exit(SETUP_FAILED)
    except OSError as exc:
        handshake.send_error(err_w, "exec", exc, command=plan.exec.argv[0])
        os._exit(exit_status_for(exc))
    except BaseException as exc:  # noqa: BLE001
        handshake.send_error(err_w, "exec", exc, command=plan.exec.argv[0])
        os._exit(SETUP_FAILED)
    os._exit(SETUP_FAILED)


def _target_child(plan: Plan, target: Target, err_r: int, err_w: int) -> NoReturn:
    """Like _command_child, but call a Python function of the forked caller."""
    import sys
    import traceback

    try:
        os.close(err_r)
        reset_signals()
        env = become(plan.exec)
        os.environ.clear()
        os.environ.update(env)
        os.close(err_w)  # the "exec" happened: the init stops waiting
    except StepFailed as exc:
        handshake.send_error(err_w, exc.step, exc.error)
        os._exit(SETUP_FAILED)
    code = 1
    try:
        result = target()
        code = result if isinstance(result, int) else 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:  # noqa: BLE001 - shown on the sandbox's stderr
        traceback.print_exc()
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:  # noqa: BLE001
                pass
    os._exit(code)


def reset_signals() -> None:
    """Default dispositions and an empty mask: Python ignores SIGPIPE, and the
    zygote ignores SIGINT; exec would pass both ignores on to the command."""
    for sig in signal.valid_signals():
        if sig not in (signal.SIGKILL, signal.SIGSTOP) and sig < signal.SIGRTMIN:
            try:
                signal.signal(sig, signal.SIG_DFL)
            except (OSError, ValueError):
                pass
    signal.pthread_sigmask(signal.SIG_SETMASK, [])


def init_loop(child: int) -> int:
    """Reap every process until ``child`` exits; forward signals to it."""

    def forward(signum: int, _frame: object) -> None:
        try:
            os.kill(child, signum)
        except ProcessLookupError:
            pass

    for sig in FORWARDED:
        signal.signal(sig, forward)
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
