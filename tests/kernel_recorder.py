"""A stand-in for the Kernel (sandbox.process.kernel) that records every call (no root).

As youki's TestHelperSyscall: each Kernel method is replaced by one that
appends ``(name, *args)`` to ``calls`` and returns a harmless answer, so a
start route's code runs in the test process and the test asserts on the
order of what it would have done. Files under ``files_under`` (a test's tmp
dir) are made for real, so steps that look at what earlier steps made see
it. ``exit`` and ``execve`` raise Exited (and the first is where the process
ends: calls after it are not recorded), ``fail_on`` makes a method raise EPERM, and
``replies`` scripts what ``read`` and ``recv_fds`` return.
"""

from __future__ import annotations

import errno
import itertools
import os

from sandbox.process.kernel import Kernel


class Exited(BaseException):
    """Kernel.exit was called (the process would have ended here)."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


class FakeSocket:
    def __init__(self, fd: int) -> None:
        self.fd = fd

    def fileno(self) -> int:
        return self.fd

    def close(self) -> None:
        pass

    def __enter__(self) -> "FakeSocket":
        return self

    def __exit__(self, *exc: object) -> None:
        pass


#: Kernel methods that only ever touch files: done for real under ``files_under``.
FILE_METHODS = {"mkdir", "makedirs", "touch", "symlink", "write_file"}
#: Kernel methods that are not calls to the kernel (state kept on the object).
NOT_RECORDED = {"mark"}


class RecordingKernel(Kernel):
    """Records every Kernel call; performs only file operations under ``files_under``."""

    def __init__(self, *, files_under: str | None = None, fail_on: str | None = None,
                 replies: dict[str, list] | None = None, trace: bool = False) -> None:
        super().__init__(trace=trace)
        self.calls: list[tuple] = []
        self.files_under = files_under
        self.fail_on = fail_on
        self.replies = {name: list(values) for name, values in (replies or {}).items()}
        self._fds = itertools.count(100)
        #: The status of the first ``exit``: the process ends there, whatever the
        #: code around it (a ``finally``, an ``except BaseException``) does with Exited.
        self.exited: int | None = None
        self.last_child = 7  # what wait_any reaps: the last process forked or spawned

    def names(self) -> list[str]:
        """The names of the calls, in order."""
        return [call[0] for call in self.calls]

    def _record(self, name: str, args: tuple) -> None:
        if self.exited is not None:
            raise Exited(self.exited)  # nothing runs after the process's end
        self.calls.append((name, *args))
        if name == self.fail_on:
            raise OSError(errno.EPERM, "Operation not permitted", args[1] if len(args) > 1 else None)

    def _answer(self, name: str, args: tuple):
        if name in FILE_METHODS:
            path = args[-1] if name == "symlink" else args[0]
            if self.files_under and os.path.abspath(path).startswith(self.files_under):
                return getattr(Kernel, name)(self, *args)
            return None
        if self.replies.get(name):
            return self.replies[name].pop(0)
        if name == "exit":
            self.exited = args[0]
            raise Exited(args[0])
        if name == "execve":  # the process is the command from here: its end, for the test
            self.exited = 0
            raise Exited(0)
        if name == "child":
            return self  # a forked child's calls follow in the same list
        if name == "loopback_up":
            self.loopback_is_up = True
        elif name == "open_host_netlink":
            self.host_netlink = FakeSocket(next(self._fds))  # type: ignore[assignment]
        elif name == "close_host_netlink":
            self.host_netlink = None
        elif name in ("enter_userns", "join_userns"):
            self.in_userns = True
        elif name in ("dup", "dup_above", "open", "pidfd_open"):
            return next(self._fds)
        elif name in ("pipe", "open_pty"):
            return next(self._fds), next(self._fds)
        elif name in ("fork", "fork_new_pidns", "fork_into_pidns"):
            self.last_child = 4242
            return 4242  # the parent's side: the child's code is called by the test itself
        elif name == "spawn":
            self.last_child = 7
            return 7
        elif name == "wait_any":
            return self.last_child, 0
        elif name in ("waitpid", "interface_index"):
            return 2
        elif name == "read":
            return b""
        elif name == "recv_fds":
            return b"", []
        elif name == "netlink_socket":
            return FakeSocket(next(self._fds))
        elif name == "write":
            return len(args[1])
        return None

    def __getattribute__(self, name: str):
        attr = object.__getattribute__(self, name)
        if (name.startswith("_") or name in NOT_RECORDED or not callable(attr)
                or name not in Kernel.__dict__):
            return attr

        def record(*args, **kwargs):
            args += tuple(kwargs.values())
            self._record(name, args)
            return self._answer(name, args)

        return record
