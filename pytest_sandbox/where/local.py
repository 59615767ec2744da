"""Run a marked test in a sandbox on this host.

Two ways in, same sandbox (the ``host`` image unless chosen, the rootdir and
sys.path bind-mounted read-only at the same paths, the report channel
read-write at /run/pytest-sandbox):

- fast, ``fork``: the engine forks this pytest process into the sandbox and
  the test's phases run there (``pytest_sandbox.inside``). Only possible
  when this process has a single thread: the engine never forks threads.
- slow, ``subprocess``: ``python -m pytest NODEID`` runs inside the sandbox
  with ``pytest_sandbox.inner`` writing the reports. Used when this process
  is multi-threaded (pytest-xdist workers, pytest-timeout's thread method)
  or with ``--sandbox-no-fork``.

On the fast path the next test's sandbox is made while this one runs: its
process is forked, enters the container, restarts capture, and waits on
its stdin for a "go" that comes when its turn does (``Prepared``). The
pytest process is otherwise idle while a test runs, so the fork, the page
faults and the setup of the next test overlap with this one. It is only
done when forking now or at the next test's turn gives the same copy: the
fixtures this process has set up (by unsandboxed tests) are all ones the
next test keeps, so the teardown between the two is empty here. It is let
go as soon as the test before it has ended, while that one's sandbox is torn
down and its reports are logged, unless those reports could stop the session
(-x, --maxfail, --stepwise): then it waits for its turn, which may not come.

From the second sandboxed test in a row on, the tests' processes are forked
by a fork server, a copy of this process (``served``).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import NamedTuple

import pytest

import sandbox
from sandbox import Mount, Sandbox, SandboxError, SpecError, get_image, single_threaded

from .. import crash, inside
from ..channel import INSIDE, ReportChannel
from ..inner import ENV, inner_argv
from ..options import wants_sandbox
from ..settings import base_fields, build_spec, host_env
from . import Outcome
from .served import Forker

#: Never bind these over the sandbox's own.
NOT_MOUNTABLE = ("/", "/tmp", "/proc", "/sys", "/dev", "/run", "/var/tmp")
#: Exceptions that stop a test from outside its sandbox (pytest-timeout's signal method, say).
STOPPED = (Exception, pytest.fail.Exception, pytest.skip.Exception)


class Prepared(NamedTuple):
    """A sandbox made ahead for ``item``: its process waits for a byte on ``go``."""

    item: pytest.Item
    box: Sandbox
    channel: ReportChannel
    go: int
    stack: tuple  # the nodes this process had set up when it was forked


class LocalRunner:
    """Runs each item in a fresh sandbox on this host, fast when it can."""

    needs_host_sandboxes = True

    def __init__(self, config, *, fork: bool = True) -> None:
        self.config = config
        self.fork = fork
        inside.register_recorder(config)  # once here, not in each forked test: see events.Recorder
        self._next: Prepared | None = None
        self._positions: dict | None = None
        self._forker = Forker()

    def expect(self, items: list) -> None:
        pass  # each sandbox is made when its test's turn comes, or while the one before runs

    def run(self, item, nextitem) -> Outcome:
        self._forker.follow(item, self._position(item))
        prepared = self._take_prepared(item)
        if prepared is not None:
            with prepared.channel as channel:
                return self._run(item, prepared.box, channel, "fork", go=prepared.go,
                                 **self._fork_hooks(item, nextitem))
        with ReportChannel() as channel:
            if self.fork and single_threaded():
                return self._run_forked(item, nextitem, channel)
            return self._run_subprocess(item, channel)

    def close(self) -> None:
        prepared, self._next = self._next, None
        if prepared is not None:
            _discard(prepared)
        self._forker.close()

    # -- the two paths ---------------------------------------------------------

    def _run_forked(self, item, nextitem, channel: ReportChannel) -> Outcome:
        try:
            box = self._forked_box(item, nextitem, channel)
        except SpecError as exc:
            return Outcome(crash.complete(item, [], None, reason=f"sandbox spec: {exc}"), path="fork")
        return self._run(item, box, channel, "fork", **self._fork_hooks(item, nextitem))

    def _forked_box(self, item, nextitem, channel: ReportChannel, *, wait_for_go: bool = False,
                    stdin_fd: int | None = None) -> Sandbox:
        spec = self._spec(item, channel, ["pytest", item.nodeid], workdir=os.getcwd())
        positions = (self._position(item), None if nextitem is None else self._position(nextitem))
        target = self._forker.target(item, nextitem, positions, wait_for_go)
        return Sandbox(spec, target=target, log_file=False, stdin_fd=stdin_fd)

    def _run_subprocess(self, item, channel: ReportChannel) -> Outcome:
        started_in = str(item.config.invocation_params.dir)  # the inner pytest's arguments need it
        try:
            spec = self._spec(item, channel, inner_argv(item), workdir=started_in, env={ENV: INSIDE})
        except SpecError as exc:
            return Outcome(crash.complete(item, [], None, reason=f"sandbox spec: {exc}"),
                           path="subprocess")
        return self._run(item, Sandbox(spec, log_file=False), channel, "subprocess")

    def _spec(self, item, channel: ReportChannel, command: list[str], *, workdir: str,
              env: dict | None = None):
        fields = base_fields(self.config, item, command)
        fields["mounts"] = [*code_mounts(item.config, fields["image"]), channel.mount,
                            *fields["mounts"]]
        fields["env"] = {**host_env(), **(env or {}), **fields["env"]}
        fields.setdefault("workdir", workdir)
        return build_spec(self.config, item, fields)

    def _run(self, item, box: Sandbox, channel: ReportChannel, path: str, *,
             go: int | None = None, ahead: Callable[[], None] = lambda: None,
             exited: Callable[[], None] = lambda: None, keep_output: bool = False) -> Outcome:
        """Run the sandbox to its end and turn whatever happened into reports.

        ``go``: a prepared sandbox's pipe, written to let its test start;
        ``ahead`` runs once pytest_sandbox_ready was called, ``exited`` once the
        test ended, before the teardown (see ``_fork_hooks``); ``keep_output``:
        the output pytest did not capture inside comes back too.
        """
        result, reason = None, None

        def on_started(_box: Sandbox) -> None:
            if go is not None:
                _go(go)
            item.config.hook.pytest_sandbox_ready(item=item, sandbox=box)
            ahead()

        try:
            result = box.run(on_started=on_started, on_exited=lambda _box: exited())
        except SandboxError as exc:
            reason = f"sandbox: could not run the test: {exc}"
        except STOPPED as exc:
            reason = f"sandbox: the test was stopped from outside its sandbox: {exc}"
        if result is not None:
            item.config.hook.pytest_sandbox_result(item=item, result=result)
        reports = crash.complete(item, channel.read(item.config), result, reason=reason)
        output = {}
        if keep_output and result is not None:
            output = {"stdout": result.stdout, "stderr": result.stderr}
        return Outcome(reports, result, path, output)

    def _fork_hooks(self, item, nextitem) -> dict:
        """What the fork path adds around a test: the next test's sandbox, made while
        this one runs and let go as soon as this one has ended; the uncaptured output."""
        return {"ahead": lambda: self._prepare(item, nextitem),
                "exited": lambda: self._go_early(item, nextitem), "keep_output": True}

    # -- the next test's sandbox, made ahead -------------------------------------

    def _prepare(self, item, nextitem) -> None:
        """Make ``nextitem``'s sandbox now, its process held before the test, if that is safe."""
        if (nextitem is None or self._next is not None or not wants_sandbox(nextitem)
                or os.environ.get(PREPARE_ENV) == "0" or not single_threaded()):
            return
        stack = tuple(item.session._setupstate.stack)
        chain = nextitem.listchain()
        after = self._item_after(nextitem)
        if after is False or any(node not in chain for node in stack):
            return  # its copy of this session would differ from the one at its turn
        channel = ReportChannel()
        go_r, go_w = os.pipe2(os.O_CLOEXEC)
        box = None
        try:
            box = self._forked_box(nextitem, after, channel, wait_for_go=True, stdin_fd=go_r)
            box.create()
            box.start(background=False)
        except (SandboxError, SpecError, OSError):
            # made again at its turn, which reports what went wrong
            if box is not None:
                box.destroy()
            channel.close()
            os.close(go_w)
            return
        finally:
            os.close(go_r)
        self._next = Prepared(nextitem, box, channel, go_w, stack)

    def _position(self, item) -> int | None:
        """Where ``item`` is in this session's items (None: not there)."""
        items = item.session.items
        if self._positions is None:
            self._positions = {id(it): i for i, it in enumerate(items)}
        i = self._positions.get(id(item))
        return i if i is not None and i < len(items) and items[i] is item else None

    def _item_after(self, item):
        """The item after ``item`` in this session (None: the last), False if unknown."""
        items = item.session.items
        i = self._position(item)
        if i is None:
            return False
        return items[i + 1] if i + 1 < len(items) else None

    def _go_early(self, item, nextitem) -> None:
        """Let the next test's prepared process start now, while this one's sandbox is torn
        down and its reports logged, when nothing that happens meanwhile can stop it."""
        prepared = self._next
        config = item.config
        if (prepared is None or prepared.go < 0 or prepared.item is not nextitem
                or config.option.maxfail or config.getoption("stepwise", False)
                or item.session.shouldstop or item.session.shouldfail):
            return
        _go(prepared.go)
        self._next = prepared._replace(go=-1)

    def _take_prepared(self, item) -> Prepared | None:
        """The sandbox made ahead for ``item``, if the session is still as it was then."""
        prepared, self._next = self._next, None
        if prepared is None:
            return None
        if prepared.item is item and tuple(item.session._setupstate.stack) == prepared.stack:
            return prepared
        _discard(prepared)
        return None


def _discard(prepared: Prepared) -> None:
    """End a sandbox made ahead for a test that will not run in it."""
    if prepared.go >= 0:
        os.close(prepared.go)
    try:
        prepared.box.kill()
        prepared.box.wait()
    except SandboxError:
        pass
    finally:
        prepared.box.destroy()
        prepared.channel.close()


#: Set to 0 to make every test's sandbox at its turn (for comparison and debugging).
PREPARE_ENV = "PYTEST_SANDBOX_PREPARE"


def _go(fd: int) -> None:
    """Let a prepared sandbox's test run (-1: it was let go early)."""
    if fd < 0:
        return
    try:
        os.write(fd, b"g")
    finally:
        os.close(fd)


def code_mounts(config, image: str) -> list[Mount]:
    """The test's code where the sandbox expects it: rootdir, cwd, sys.path, read-only.

    Worked out again only when one of its inputs changed (a test may change
    sys.path or the cwd): it stats every sys.path entry.
    """
    key = (image, str(config.rootpath), str(config.invocation_params.dir), os.getcwd(),
           tuple(sys.path))
    if _CODE_MOUNTS.get("key") != key:
        _CODE_MOUNTS.update(key=key, mounts=tuple(_code_mounts(config, image)))
    return list(_CODE_MOUNTS["mounts"])


_CODE_MOUNTS: dict = {}


def _code_mounts(config, image: str) -> list[Mount]:
    candidates = [str(config.rootpath), str(config.invocation_params.dir), os.getcwd(),
                  _package_parent(__file__, 3), _package_parent(sandbox.__file__, 2), *sys.path]
    if image != "host":
        candidates += [sys.prefix, sys.base_prefix]
    # what the host image binds already (its host paths, this Python, this package):
    # bound again, each would cost every sandbox a mount
    shown = get_image("host").host_dirs if image == "host" else ()
    chosen: list[str] = []
    for path in sorted({os.path.realpath(p) for p in candidates if p and os.path.isabs(p)}):
        if (path in NOT_MOUNTABLE or not os.path.isdir(path)
                or any(_within(path, parent) for parent in (*shown, *chosen))):
            continue
        chosen.append(path)
    return [Mount(path, path, read_only=True) for path in chosen]


def _package_parent(path: str, levels: int) -> str:
    """The directory a package was imported from (its parent), ``levels`` up from a file."""
    for _ in range(levels):
        path = os.path.dirname(os.path.abspath(path))
    return path


def _within(path: str, parent: str) -> bool:
    return path == parent or path.startswith(parent.rstrip("/") + "/")
