"""Forking the container's first process, safely from any host process.

fork() in a multi-threaded process copies one thread and every lock the
others held: the child can deadlock on the first malloc or import. So the
engine forks only from a process that has a single thread:

- the caller itself, when it is single-threaded (the CLI, a plain script),
  for its first container (``fork_here``);
- otherwise a *zygote*: a small single-threaded helper started once per
  process with subprocess (which execs at once, so it is thread-safe), that
  forks containers on request. Requests and file descriptors travel over a
  SOCK_SEQPACKET socketpair; the reply carries a pidfd for the new init.
  Threaded callers always come here; single-threaded ones from their second
  container on, because it is faster: a fork copies the forking process's
  page tables, and the child's page faults and exit cost in proportion too,
  and the zygote is small and keeps a spare forked ahead (``spare``).

Either way the init gets PR_SET_PDEATHSIG=SIGKILL against a single-threaded
parent, and the zygote exits when its socket closes (its owner died): a
killed owner takes its containers with it.
"""

from __future__ import annotations

import errno
import os
import pickle
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

from ..errors import HostError
from ..plan import Plan
from ..state import run_dir
from .fork import start_container
from .spare import Spare, fits, spare_flags
from .target import fork_target

def staging_dir() -> str | None:
    """The empty host directory spares mount their staging tmpfs on (None: cannot make it).

    Each spare mounts over it in its own mount namespace only (see
    ``setup.stage_pseudo_fs``); on the host it stays an empty directory.
    Asked for at every spare: only a stat once it has been made.
    """
    path = os.path.join(run_dir(), "staging")
    if os.path.isdir(path):
        return path
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
    except OSError:
        return None
    return path


def single_threaded() -> bool:
    """True when this process has exactly one thread (counted by the kernel).

    A thread Python already joined (a finished sandbox's monitor) can still
    be on its way out of the kernel for a moment: that is waited for, briefly.
    """
    if threading.active_count() != 1:
        return False
    for _ in range(EXITING_THREAD_POLLS):
        if len(os.listdir("/proc/self/task")) == 1:
            return True
        time.sleep(0.001)
    return False


EXITING_THREAD_POLLS = 50


@dataclass
class ContainerProcess:
    """The container's init, seen from the parent.

    For a Python target forked into a held container (``process.target``)
    also the target's process, our own child (``command``: pid and pidfd),
    and our end of the init's socket (``holder``): closing it ends the init.
    """

    pid: int
    pidfd: int
    direct: bool  # we forked it, so we must reap it
    reaped: bool = field(default=False)
    command: tuple[int, int] | None = None
    holder: socket.socket | None = None
    command_status: int | None = None

    def send_signal(self, sig: int) -> None:
        """Signal the command (through its init, or straight to our forked target);
        SIGKILL always goes to the init: the whole pid namespace dies."""
        pidfd = self.command[1] if self.command and sig != signal.SIGKILL else self.pidfd
        if pidfd < 0:
            return
        try:
            signal.pidfd_send_signal(pidfd, sig)
        except ProcessLookupError:
            pass

    def reap_command(self) -> int:
        """Collect our forked target's wait status, then let its init go."""
        if self.command_status is None and self.command is not None:
            _, self.command_status = os.waitpid(self.command[0], 0)
            os.close(self.command[1])
            self.command = (self.command[0], -1)
            self.release_init()
        return self.command_status or 0

    def release_init(self) -> None:
        """A held init exits when our end of its socket closes."""
        if self.holder is not None:
            self.holder.close()
            self.holder = None

    def reap(self) -> None:
        """Wait for the init to end; collect it when it is our child.

        A forked target is collected first: an exiting pid-1 init waits until
        every process of its namespace has been reaped, and the target's
        parent is this process (the init's exit kills the target).
        """
        self.release_init()
        if self.command is not None:
            self.reap_command()
        if self.direct and not self.reaped:
            os.waitid(os.P_PIDFD, self.pidfd, os.WEXITED)
        else:
            select.select([self.pidfd], [], [])
        self.reaped = True

    def close(self) -> None:
        if self.pidfd >= 0:
            os.close(self.pidfd)
            self.pidfd = -1
        self.release_init()


def spawn(plan: Plan, fds: tuple[int, int, int, int], target=None,
          prepare: Callable[[], None] = lambda: None) -> ContainerProcess:
    """Start the container's init; fds = (status_w, stdin_r, stdout_w, stderr_w).

    The fds are this process's copies of the child's ends: they are closed
    here, also on error.

    ``prepare`` makes what the init joins (its cgroup): called before a
    fork, or, when a spare takes the plan, while the spare mounts; the spare
    is let go on only after it returned. If it raises, nothing was started.

    ``target``: a Python callable of this process to run instead of the
    command. It needs this process's memory, so it is only possible by
    forking this process, which is only safe when it is single-threaded.
    A process's first target runs under an init forked from here too; later
    ones are forked into a container a spare holds ready (``process.target``).
    """
    global _SPAWNED
    try:
        here = fork_here(spawn_mode())
        if target is not None and here is None:
            raise HostError(
                f"cannot run a Python function in a sandbox from a process with "
                f"{len(os.listdir('/proc/self/task'))} threads: it would fork them",
                hint="run it from a single-threaded process, or run a command instead")
        if target is None and not here:
            return Zygote.get().spawn(plan, fds, prepare)
        if target is not None and not here and fits(plan, spare_flags(plan.unshare_flags)):
            return Zygote.get().spawn_target(plan, fds, target, prepare)
        prepare()
        pid, pidfd = start_container(plan, fds, target)
    finally:
        for fd in fds:
            os.close(fd)
    _SPAWNED += 1
    return ContainerProcess(pid, pidfd, direct=True)


_SPAWNED = 0  # containers this process forked itself

#: SANDBOX_SPAWN: how a single-threaded caller starts a container (threaded
#: callers always go through the zygote, Python targets never do).
SPAWN_MODES = ("auto", "direct", "zygote")


def spawn_mode() -> str:
    """SANDBOX_SPAWN, checked."""
    mode = os.environ.get("SANDBOX_SPAWN", "auto")
    if mode not in SPAWN_MODES:
        raise HostError(f"SANDBOX_SPAWN={mode!r} is not a spawn mode",
                        hint=f"use one of: {', '.join(SPAWN_MODES)}")
    return mode


def fork_here(mode: str) -> bool | None:
    """Whether this process should fork the container itself; None if it must not.

    Forking is only safe from a single-threaded process (None otherwise).
    ``auto``: the first container of a process is forked directly (a
    one-shot ``sandbox run`` starts no helper), every later one through the
    zygote: its forks are of a small process, with a spare made ahead, which
    pays for the helper's start (~50 ms, once) after a few containers.
    ``direct`` and ``zygote`` force one way, for tests and benchmarks.
    """
    if not (single_threaded() and threading.current_thread() is threading.main_thread()):
        return None
    return mode == "direct" or (mode == "auto" and _SPAWNED == 0)


def _prepare_then_release(spare: Spare, plan: Plan, prepare: Callable[[], None]) -> None:
    """Make the cgroup while the spare mounts, then join it and let the spare go on."""
    try:
        prepare()
    except BaseException:
        spare.discard()
        raise
    spare.release(plan)


PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

#: The zygote's first lines. Every container it forks is a copy of it, and a
#: fork, its page faults and its exit cost in proportion to the memory
#: copied. So: no site (-S; the caller's sys.path is passed instead), and the
#: container side of the package only, without ``sandbox/__init__`` (which
#: imports the whole engine); that side needs no dataclasses, typing,
#: subprocess or threading either. 6 MB of private memory instead of 24.
ZYGOTE_BOOT = """\
import sys, types
fd, package_dir, path = sys.argv[1:4]
sys.path[:0] = path.split(":")
package = types.ModuleType("sandbox")
package.__path__ = [package_dir]
sys.modules["sandbox"] = package
from sandbox.process.zygote import main
main(int(fd))
"""


class Zygote:
    """Client side of the per-process zygote.

    Besides forking containers on request, the zygote forks *spares* and
    hands them to this process (pid, pidfd and the spare's socket, over
    SCM_RIGHTS): the next plan goes straight to the spare, and this process
    joins it to the cgroup, with no hop through the zygote. After each
    container that fitted a spare, the next one is asked for at once and
    collected at the next spawn, so the zygote forks it while the
    container runs.
    """

    _instance: "Zygote | None" = None
    _instance_lock = threading.Lock()

    def __init__(self) -> None:
        parent_sock, child_sock = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.proc = subprocess.Popen(
            [sys.executable, "-S", "-c", ZYGOTE_BOOT, str(child_sock.fileno()), PACKAGE_DIR,
             os.pathsep.join(p for p in sys.path if p)],
            pass_fds=[child_sock.fileno()], start_new_session=True, stdin=subprocess.DEVNULL,
        )
        child_sock.close()
        self.sock = parent_sock
        self.lock = threading.Lock()
        self.pid = os.getpid()
        self._spare_asked = False

    @classmethod
    def get(cls) -> "Zygote":
        with cls._instance_lock:
            inst = cls._instance
            if inst is None or inst.pid != os.getpid() or inst.proc.poll() is not None:
                cls._instance = inst = cls()
            return inst

    def spawn(self, plan: Plan, fds: tuple[int, int, int, int],
              prepare: Callable[[], None] = lambda: None) -> ContainerProcess:
        flags = spare_flags(plan.unshare_flags)
        with self.lock:
            handed = self._handed_spare(plan, fds)
            if handed is None:
                prepare()
                pid, pidfd = self._request(("spawn", plan), fds)
        if handed is not None:
            spare, pid, pidfd = handed
            _prepare_then_release(spare, plan, prepare)
        if fits(plan, flags):  # after the join: the fork then competes with less
            with self.lock:
                self._ask_for_spare(flags)
        return ContainerProcess(pid, pidfd, direct=False)

    def spawn_target(self, plan: Plan, fds: tuple[int, int, int, int], target: Callable,
                     prepare: Callable[[], None] = lambda: None) -> ContainerProcess:
        """A spare holds the container ready; this process forks the target into it.

        Only from a single-threaded process (the target is a fork of it).
        See ``process.target``.
        """
        flags = spare_flags(plan.unshare_flags)
        plan = plan._replace(hold=True)
        with self.lock:
            handed = self._handed_spare(plan, fds, fresh=2)
        if handed is None:
            raise HostError("the zygote process could not make a container for the target")
        spare, pid, pidfd = handed
        _prepare_then_release(spare, plan, prepare)
        proc = ContainerProcess(pid, pidfd, direct=False, holder=spare.sock)
        try:
            proc.command = fork_target(plan, fds, target, pidfd, spare.sock.fileno())
        except OSError as exc:
            if exc.errno != errno.ENOMEM:
                proc.send_signal(signal.SIGKILL)
                proc.close()
                raise
            # the pid namespace takes no new process: its init failed and is exiting,
            # and its status pipe says why (the monitor reads it as for a command)
        except BaseException:
            proc.send_signal(signal.SIGKILL)
            proc.close()
            raise
        with self.lock:
            self._ask_for_spare(flags)
        return proc

    def _handed_spare(self, plan: Plan, fds: tuple[int, int, int, int],
                      fresh: int = 0) -> tuple[Spare, int, int] | None:
        """(spare, pid, pidfd): a spare that has the plan now, or None.

        The spare asked for last, if it fits and is alive; else up to
        ``fresh`` ones asked for now (each is waited for). Under self.lock.
        """
        trace = os.environ.get("SANDBOX_TRACE") == "1"
        spare = self._take_spare(plan)
        while True:
            if spare is not None:
                try:
                    return (spare, *spare.hand_over(plan, fds, trace))
                except OSError:  # it died before it got the plan
                    spare.discard()
            if fresh == 0:
                return None
            fresh -= 1
            self._ask_for_spare(spare_flags(plan.unshare_flags))
            spare = self._take_spare(plan)

    def _take_spare(self, plan: Plan) -> Spare | None:
        """The spare asked for last time, if it fits the plan and is still there."""
        if not self._spare_asked:
            return None
        self._spare_asked = False
        try:
            (pid, flags), (pidfd, sock_fd) = self._reply()
        except HostError:
            return None  # no spare this time: the zygote forks afresh
        spare = Spare(pid, pidfd, socket.socket(fileno=sock_fd), flags)
        if fits(plan, flags) and spare.alive():
            return spare
        spare.discard()
        return None

    def _ask_for_spare(self, flags: int) -> None:
        """Ask for the next spare now (once); its reply is read at the next spawn."""
        if self._spare_asked:
            return  # another thread asked already: one reply is due, never two
        try:
            self.sock.send(pickle.dumps(("spare", (flags, staging_dir()))))
            self._spare_asked = True
        except OSError:
            pass  # the zygote is gone: the next spawn starts a new one

    def _request(self, request: tuple, fds: tuple[int, ...] = ()) -> tuple[int, int]:
        """Send one request; the (pid, pidfd) of the init it started."""
        try:
            socket.send_fds(self.sock, [pickle.dumps(request)], list(fds))
        except OSError as exc:
            raise HostError(f"the zygote process failed: {exc}") from exc
        value, (pidfd,) = self._reply()
        return value, pidfd

    def _reply(self) -> tuple[object, list[int]]:
        """The next reply's value and fds; HostError if it is an error."""
        try:
            reply, got_fds, _, _ = socket.recv_fds(self.sock, 65536, 2, socket.MSG_CMSG_CLOEXEC)
        except OSError as exc:
            raise HostError(f"the zygote process failed: {exc}") from exc
        if not reply:
            raise HostError("the zygote process exited unexpectedly")
        kind, value = pickle.loads(reply)
        if kind != "ok":
            for fd in got_fds:
                os.close(fd)
            raise HostError(f"could not fork the container: {value}")
        return value, got_fds
