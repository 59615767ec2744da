"""The command's terminal: a pty made inside the container, its master sent to the owner.

As runc's ``setupConsole`` does, and for the same reasons:

- the pty is opened *inside* the container, in its own devpts instance
  (/dev/pts, mounted ``newinstance``), after pivot_root, while the process
  is still root: ``Kernel.open_pty`` checks by fd that the ptmx opened is a
  devpts multiplexer and reaches the peer from the master (TIOCGPTPEER),
  never by the path /dev/pts/N (runc CVE-2025-52565);
- the master goes to the owner over the *console socket* (a unix socket
  pair, SCM_RIGHTS; the owner receives it close-on-exec) and is closed
  here: nothing in the container holds it;
- the peer is given to the command's user (as login(1) does; in a user
  namespace, the host ids its uid and gid are, as the process is not in it
  yet: its root can then open its own terminal by path), sized, and
  made the command's stdin, stdout, stderr and controlling terminal: the
  command is forked, calls setsid and TIOCSCTTY, and execs. So Ctrl-C,
  Ctrl-Z and job control act inside the container, on the command's
  process groups, and a hangup of the terminal reaches them.

The fork is of the init (or of an exec's first process), which has become
the command's user already; a Python fork, not posix_spawn: the
controlling terminal needs an ioctl between setsid and exec.
"""

from __future__ import annotations

from ..plan import ExecPlan
from .kernel import Kernel

TYPE_CHECKING = False  # typing itself is not loaded: the zygote stays small

if TYPE_CHECKING:
    from typing import NoReturn

#: What the console socket's message says (the master comes with it).
PTY_MESSAGE = b"pty"
#: The exit status of a command that could not be executed on its terminal.
CANNOT_EXEC = 126


def open_console(plan: ExecPlan, kernel: Kernel, console_fd: int) -> int:
    """Make the command's pty and send its master to the owner; the peer (close-on-exec).

    Runs as root, before ``become``: the peer is then given to the user.
    """
    master, peer = kernel.open_pty()
    try:
        rows, cols = plan.tty
        kernel.set_window_size(master, rows, cols)
        kernel.fchown(peer, *terminal_owner(plan, kernel))
        kernel.send_fds(console_fd, PTY_MESSAGE, [master])
    except BaseException:
        kernel.close(peer)
        raise
    finally:
        kernel.close(master)
        kernel.close(console_fd)
    return peer


def terminal_owner(plan: ExecPlan, kernel: Kernel) -> tuple[int, int]:
    """The (uid, gid) the command's user is where this process is: in the host's user
    namespace until it enters the sandbox's, its ids there are those of its range."""
    uid, gid = plan.ids[0], plan.ids[1]
    if plan.userns is None or kernel.in_userns:
        return uid, gid
    return plan.userns.uid_base + uid, plan.userns.gid_base + gid


def spawn_on_terminal(kernel: Kernel, peer: int, path: str, argv: tuple[str, ...],
                      env: dict[str, str]) -> int:
    """Fork the command with ``peer`` as its terminal; its pid. The peer is closed here."""
    pid = kernel.fork()
    if pid == 0:
        _exec_on_terminal(kernel, peer, path, argv, env)
    kernel.close(peer)
    return pid


def _exec_on_terminal(kernel: Kernel, peer: int, path: str, argv: tuple[str, ...],
                      env: dict[str, str]) -> NoReturn:
    """In the command's process: a session of its own, the pty its controlling terminal
    and stdio, default signals, exec. A failure is written on the terminal."""
    try:
        kernel.reset_signals()
        kernel.setsid()
        kernel.set_controlling_tty(peer)
        for fd in (0, 1, 2):
            kernel.dup2(peer, fd, True)
        if peer > 2:
            kernel.close(peer)
        kernel.execve(path, argv, env)
    except OSError as exc:
        _say(kernel, f"sandbox: cannot execute {argv[0]}: {exc.strerror or exc}\r\n")
    kernel.exit(CANNOT_EXEC)


def _say(kernel: Kernel, text: str) -> None:
    try:
        kernel.write(2, text.encode("utf-8", "replace"))
    except OSError:
        pass
