"""The zygote route: a small helper process forks the container's init, or made it ahead.

Forking copies the forking process's page tables, and the child's
copy-on-write faults and its exit cost in proportion to what it shares. So
a process that starts many containers (a worker, a test session), and every
multi-threaded one, has them forked by a *zygote*: a single-threaded helper
started once per process with ``subprocess`` (which execs at once), over a
SOCK_SEQPACKET socketpair with the pipes passed as fds; the reply carries a
pidfd. The zygote is small on purpose: ``python -S``, only the container
side of the package, no dataclasses, typing, subprocess or threading.

After each container the owner asks it for a *spare* (``spare``): the next
container's init, namespaces made and /proc, /dev and /sys staged. The
zygote passes the spare's socket and a pidfd to the owner, which sends the
next plan straight to the spare and joins it to the sandbox's cgroup while
it mounts. The zygote exits when its socket closes (its owner died), and
its children die with it (pdeathsig): a killed owner takes its containers
with it.
"""

from __future__ import annotations

import os
import pickle
import socket
import subprocess
import sys
import threading
from collections.abc import Callable

from ..errors import HostError
from ..plan import Plan
from ..state import run_dir
from .container import ContainerProcess
from .fds import ChildFds
from .kernel import Kernel
from .spare import Spare, fits, spare_flags

PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

#: The zygote's first lines: no site (-S; the caller's sys.path is passed instead),
#: and the container side of the package only, without ``sandbox/__init__``
#: (which imports the whole engine). See bench/README.md for what that saves.
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


def staging_dir() -> str | None:
    """The empty host directory spares mount their staging tmpfs on (None: cannot make it).

    Each spare mounts over it in its own mount namespace only
    (``steps.stage_pseudo_fs``); on the host it stays an empty directory.
    """
    path = os.path.join(run_dir(), "staging")
    if os.path.isdir(path):
        return path
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
    except OSError:
        return None
    return path


class ZygoteClient:
    """This process's connection to its zygote, and the spare it asked for last."""

    _instance: ZygoteClient | None = None
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
        self.kernel = Kernel()
        self._spare_asked = False
        self._spare: Spare | None = None  # a spare whose reply was read before its start

    @classmethod
    def get(cls) -> ZygoteClient:
        """This process's zygote, started on first use (again after a fork or its death)."""
        with cls._instance_lock:
            inst = cls._instance
            if inst is None or inst.pid != os.getpid() or inst.proc.poll() is not None:
                cls._instance = inst = cls()
            return inst

    def spawn(self, plan: Plan, fds: ChildFds) -> tuple[int, int]:
        """Have the zygote fork a fresh init: (pid, pidfd). Under self.lock."""
        try:
            self.kernel.send_fds(self.sock, pickle.dumps(("spawn", plan)), fds.passed())
        except OSError as exc:
            raise HostError(f"the zygote process failed: {exc}") from exc
        pid, (pidfd,) = self._reply()
        return pid, pidfd  # type: ignore[return-value]

    def enter(self, plan: Plan, fds: ChildFds, init_pidfd: int) -> tuple[int, int]:
        """Have the zygote fork an exec's first process into a running container
        (``enter``): (pid, pidfd). Under self.lock."""
        self._spare = self._pending_spare()  # replies come in order: a spare's is due first
        try:
            self.kernel.send_fds(self.sock, pickle.dumps(("enter", plan)),
                                 [*fds.passed(), init_pidfd])
        except OSError as exc:
            raise HostError(f"the zygote process failed: {exc}") from exc
        pid, (pidfd,) = self._reply()
        return pid, pidfd  # type: ignore[return-value]

    def handed_spare(self, plan: Plan, fds: ChildFds, fresh: int = 0) -> Spare | None:
        """A spare that has the plan now (call its ``release`` next), or None.

        The spare asked for last, if it fits and is alive; else up to
        ``fresh`` ones asked for now (each is waited for). Under self.lock.
        """
        spare = self._take_spare(plan)
        while True:
            if spare is not None:
                try:
                    spare.hand_over(plan, fds)
                    return spare
                except OSError:  # it died before it got the plan
                    spare.discard()
            if fresh == 0:
                return None
            fresh -= 1
            self.ask_for_spare(spare_flags(plan.unshared_first))
            spare = self._take_spare(plan)

    def _take_spare(self, plan: Plan) -> Spare | None:
        """The spare asked for last time, if it fits the plan and is still there."""
        spare = self._pending_spare()
        if spare is None:
            return None
        if fits(plan, spare.flags) and spare.alive():
            return spare
        spare.discard()
        return None

    def _pending_spare(self) -> Spare | None:
        """The spare asked for last time (its reply read now, if not yet), or None."""
        spare, self._spare = self._spare, None
        if spare is not None or not self._spare_asked:
            return spare
        self._spare_asked = False
        try:
            value, (pidfd, sock_fd) = self._reply()
            assert isinstance(value, tuple)
            pid, flags = value
        except HostError:
            return None  # no spare this time: the zygote forks afresh
        return Spare(pid, pidfd, socket.socket(fileno=sock_fd), flags, self.kernel)

    def ask_for_spare(self, flags: int) -> None:
        """Ask for the next spare now (once); its reply is read at the next start."""
        if self._spare_asked or self._spare is not None:
            return  # another thread asked already: one reply is due, never two
        try:
            self.sock.send(pickle.dumps(("spare", (flags, staging_dir()))))
            self._spare_asked = True
        except OSError:
            pass  # the zygote is gone: the next start begins a new one

    def _reply(self) -> tuple[object, list[int]]:
        """The next reply's value and fds; HostError if it is an error."""
        try:
            reply, got_fds = self.kernel.recv_fds(self.sock.fileno(), 65536, 2)
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


def release_spare(spare: Spare, plan: Plan, prepare: Callable[[], None]) -> None:
    """Make the cgroup while the spare mounts, then join it and let the spare go on."""
    try:
        prepare()
    except BaseException:
        spare.discard()
        raise
    spare.release(plan)


class ZygoteLauncher:
    """Starts a command's init through the zygote: a spare when one fits, else a fresh fork."""

    def start(self, plan: Plan, fds: ChildFds, prepare: Callable[[], None]) -> ContainerProcess:
        zygote = ZygoteClient.get()
        flags = spare_flags(plan.unshared_first)
        try:
            with zygote.lock:
                spare = zygote.handed_spare(plan, fds)
                if spare is None:
                    prepare()
                    pid, pidfd = zygote.spawn(plan, fds)
        finally:
            for fd in fds.passed():
                os.close(fd)
        if spare is not None:
            pid, pidfd = spare.pid, spare.pidfd
            release_spare(spare, plan, prepare)
        if fits(plan, flags):  # after the join: the fork then competes with less
            with zygote.lock:
                zygote.ask_for_spare(flags)
        return ContainerProcess(pid, pidfd, direct=False)
