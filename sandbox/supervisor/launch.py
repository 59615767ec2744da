"""Making a supervised sandbox and starting its supervisor process.

``create`` makes the state dir, claims the name and writes the status
(``created``): the sandbox exists, nothing runs. ``launch`` starts its
supervisor, detached from the caller (its own session, not the caller's
child: a double fork), over a socket pair made first: the caller's end is
the supervisor's first client, so it is attached before anything runs and
misses no output, and learns on it whether the command started. From a
single-threaded caller (the CLI) the supervisor is a fork of it; from a
multi-threaded one (a daemon) it is ``python -m sandbox.supervisor``.

``supervisor_main`` is the process: named ``sandbox-supervisor``, no fd of
its parent's but its socket, /dev/null on 0-2, in /.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from dataclasses import dataclass

from .. import linux, state
from ..errors import HostError, SandboxError, SpecError
from ..logs import FileSink
from ..process.launcher import single_threaded
from ..spec import SandboxSpec
from .client import Attachment, first_reply
from .options import SupervisorOptions
from .protocol import REPLY, json_frame
from .status import Status, write_status

NAME = "sandbox-supervisor"


class StartFailed(SandboxError):
    """The supervised sandbox's command could not be started (its exit status: Docker's)."""

    def __init__(self, message: str, exit_status: int = 125) -> None:
        super().__init__(message)
        self.exit_status = exit_status


@dataclass
class Launched:
    """A started supervised sandbox: its id, whether it has a terminal, and the caller's
    attachment to it (from the start), if the caller kept one."""

    id: str
    tty: bool
    attachment: Attachment | None


def create(spec: SandboxSpec, options: SupervisorOptions) -> state.SandboxDir:
    """Make a supervised sandbox: state dir, name, status; nothing runs yet."""
    if spec.stdin is not None:
        raise SpecError("stdin", f"{len(spec.stdin)} bytes", "no stdin data for a sandbox that "
                        "outlives its client: attach to it and type, or use interactive",
                        shown=f"{len(spec.stdin)} bytes")
    if spec.upper_dir is not None:
        raise SpecError("upper_dir", spec.upper_dir, "none: a kept sandbox's layer is its own")
    sdir = state.SandboxDir(state.new_id())
    sdir.create()
    try:
        if spec.name:
            state.claim_name(spec.name, sdir.id)
        write_status(sdir, Status(spec=spec.to_dict(), options=options.to_dict()))
    except BaseException:
        state.release_name(spec.name, sdir.id)
        sdir.remove()
        raise
    return sdir


def launch(sdir: state.SandboxDir, *, attach: bool) -> Launched:
    """Start the supervisor of ``sdir`` and wait until its command runs (StartFailed if it
    could not start)."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        try:
            _start_process(sdir.id, theirs)
        finally:
            theirs.close()
        reply, reader, pending = first_reply(ours)
        if reply is None:
            raise HostError(f"the supervisor of sandbox {sdir.id} exited as it started "
                            f"(see `sandbox logs {sdir.id}`)")
    except BaseException:
        ours.close()
        raise
    if not reply.get("ok"):
        ours.close()
        raise StartFailed(str(reply.get("error")), int(reply.get("status", 125)))
    tty = bool(reply.get("tty"))
    if not attach:
        ours.close()
        return Launched(sdir.id, tty, None)
    return Launched(sdir.id, tty, Attachment(ours, sdir.id, tty, reader, pending))


def _start_process(sandbox_id: str, sock: socket.socket) -> None:
    """A detached supervisor process for the sandbox, with ``sock`` its first client."""
    if single_threaded():
        pid = os.fork()
        if pid == 0:
            try:
                os.setsid()
                if os.fork() == 0:
                    supervisor_main(sandbox_id, sock.fileno())
            finally:
                os._exit(0)
        os.waitpid(pid, 0)
        return
    proc = subprocess.Popen(
        [sys.executable, "-m", "sandbox.supervisor", sandbox_id, str(sock.fileno())],
        pass_fds=[sock.fileno()], start_new_session=True, stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)})
    proc.wait()


def daemonize_and_serve(sandbox_id: str, sock_fd: int) -> None:
    """``python -m sandbox.supervisor``: leave the parent (which waits), then serve."""
    if os.fork() == 0:
        supervisor_main(sandbox_id, sock_fd)
    os._exit(0)


def supervisor_main(sandbox_id: str, sock_fd: int) -> None:
    """The supervisor process: serve the sandbox until it ends for good, then exit."""
    status = 1
    sock = None
    try:
        linux.set_name(NAME)
        sock = socket.socket(fileno=_only(sock_fd))
        os.chdir("/")
        from .server import Supervisor

        Supervisor(sandbox_id, sock).serve()
        status = 0
    except BaseException as exc:
        _report(sandbox_id, sock, exc)
    finally:
        os._exit(status)


def _only(fd: int) -> int:
    """Keep nothing open but ``fd`` (moved above 2, returned) and /dev/null on 0-2."""
    import fcntl

    fd_high = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 3)
    null = os.open("/dev/null", os.O_RDWR)
    for target in (0, 1, 2):
        os.dup2(null, target)
    os.closerange(3, fd_high)
    os.closerange(fd_high + 1, os.sysconf("SC_OPEN_MAX"))
    return fd_high


def _report(sandbox_id: str, sock: socket.socket | None, exc: BaseException) -> None:
    """A supervisor that failed: tell its first client (if it still listens) and the log."""
    text = f"{type(exc).__name__}: {exc}"
    status = exc.exit_status if isinstance(exc, SandboxError) else 125
    if sock is not None:
        try:
            sock.setblocking(True)
            sock.sendall(json_frame(REPLY, {"ok": False, "error": text, "status": status}))
        except OSError:
            pass
    try:
        sink = FileSink(state.SandboxDir(sandbox_id).log_path)
        sink.note(event="supervisor failed", error=text)
        sink.close()
    except OSError:
        pass
