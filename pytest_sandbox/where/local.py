"""Run a marked test in a sandbox on this host.

Two ways in, same sandbox (the ``host`` image unless chosen, the rootdir and
sys.path bind-mounted read-only at the same paths, the report channel
read-write at /run/pytest-sandbox):

- fast, ``fork``: the engine forks this pytest process into the sandbox and
  the test's phases run there (``pytest_sandbox.inside``). Only possible
  when this process has a single thread: the engine never forks threads.
- through the session's *twin*, when this process is multi-threaded
  (pytest-xdist workers, pytest-timeout's thread method): a single-threaded
  copy of the session, started once, takes the fast path for it and sends
  back what the test wrote (``twin``); this runner, in the twin, is the one
  that forks (``serving``).
- slow, ``subprocess``: ``python -m pytest NODEID`` runs inside the sandbox
  with ``pytest_sandbox.inner`` writing the reports. With
  ``--sandbox-no-fork``, or when no twin could start.

On the fast path the next test's sandbox is made while this one runs: its
process is forked, enters the container, restarts capture, and waits on
its stdin for a "go" that comes when its turn does (``Prepared``), and
names the test after it (which decides what its teardown ends). The
pytest process is otherwise idle while a test runs, so the fork, the page
faults and the setup of the next test overlap with this one. It is only
done when forking now or at the next test's turn gives the same copy: the
fixtures this process has set up (by unsandboxed tests) are all ones the
next test keeps, so the teardown between the two is empty here. It is let
go as soon as the test before it has ended, while that one's sandbox is torn
down and its reports are logged, when the test after it is known by then
and nothing can stop the session (-x, --maxfail, --stepwise): else it waits
for its turn, which may not come.

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

from .. import inside
from ..channel import INSIDE, ReportChannel
from ..inner import ENV, inner_argv
from ..options import wants_sandbox
from ..settings import base_fields, build_spec, host_env
from . import STOPPED, Outcome, Ran, read
from .served import Forker
from .twin import Twin

#: Never bind these over the sandbox's own.
NOT_MOUNTABLE = ("/", "/tmp", "/proc", "/sys", "/dev", "/run", "/var/tmp")
#: Set in a twin's config (``pytest_sandbox.twin``): its runner serves another session.
SERVING = pytest.StashKey[bool]()
#: "The item after this one is not known (yet)", where an item or None is expected.
UNKNOWN = False


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
        #: In a twin: its own session never runs a test, so a fork server's copy always stands
        self.serving = config.stash.get(SERVING, False)
        #: A stop hook for ``Sandbox.run`` (a twin's: the session's signals end a test)
        self.stop = None
        inside.register_recorder(config)  # once here, not in each forked test: see events.Recorder
        self._next: Prepared | None = None
        self._positions: dict | None = None
        self._forker = Forker(stable=self.serving)
        self._twin = Twin(config) if fork and not self.serving else None
        self._lasting: frozenset[str] = frozenset()  # threads that did not end when waited for

    def expect(self, items: list) -> None:
        """Each sandbox is made at its test's turn, or while the one before runs."""
        self.collected(items)

    def collected(self, items: list) -> None:
        """A session that cannot fork starts its twin now, which collects while this
        session waits for its first test."""
        if self._twin is not None and items and not self._forkable():
            self._twin.start()

    def run(self, item, nextitem) -> Outcome:
        return read(item, self.ran(item, nextitem, self._item_after(nextitem)))

    def ran(self, item, nextitem, after=UNKNOWN) -> Ran:
        """Run ``item`` here and give back what its sandbox wrote, unread; ``after``: the
        item after ``nextitem`` (None: none; UNKNOWN), for letting the next test go early."""
        self._forker.follow(item, self._position(item))
        prepared = self._take_prepared(item, nextitem)
        if prepared is not None:
            with prepared.channel as channel:
                return self._run(item, prepared.box, channel, "fork",
                                 go=(prepared.go, self._go_position(nextitem)),
                                 **self._fork_hooks(item, nextitem, after))
        if self.fork and self._forkable():
            with ReportChannel() as channel:
                return self._run_forked(item, nextitem, after, channel)
        ran = self._twin.run(item, nextitem) if self._twin is not None and self.fork else None
        if ran is not None:
            return ran
        with ReportChannel() as channel:
            return self._run_subprocess(item, channel)

    def close(self) -> None:
        prepared, self._next = self._next, None
        if prepared is not None:
            _discard(prepared)
        self._forker.close()
        if self._twin is not None:
            self._twin.close()

    def _forkable(self) -> bool:
        """Whether this process has one thread (``single_threaded``), without its wait for
        threads on their way out when the others are ones it waited for in vain before
        (a pytest-xdist worker's execnet thread stays for good: each test would wait)."""
        others = frozenset(os.listdir("/proc/self/task")) - {str(os.getpid())}
        if others and others <= self._lasting:
            return False
        if single_threaded():
            return True
        self._lasting = frozenset(os.listdir("/proc/self/task")) - {str(os.getpid())}
        return False

    # -- the paths -------------------------------------------------------------

    def _run_forked(self, item, nextitem, after, channel: ReportChannel) -> Ran:
        try:
            box = self._forked_box(item, nextitem, channel)
        except SpecError as exc:
            return Ran(b"", None, "fork", reason=f"sandbox spec: {exc}")
        return self._run(item, box, channel, "fork", **self._fork_hooks(item, nextitem, after))

    def _forked_box(self, item, nextitem, channel: ReportChannel, *, wait_for_go: bool = False,
                    stdin_fd: int | None = None) -> Sandbox:
        """``item``'s sandbox, its process a fork of this one; ``wait_for_go``: it waits for
        its turn, when it learns its ``nextitem`` (``_go``)."""
        spec = self._spec(item, channel, ["pytest", item.nodeid], workdir=os.getcwd())
        inside.prepare(self.config)  # what the forked process calls, made here, once
        positions = (self._position(item), None if nextitem is None else self._position(nextitem))
        target = self._forker.target(item, nextitem, positions, wait_for_go)
        return Sandbox(spec, target=target, log_file=False, stdin_fd=stdin_fd)

    def _run_subprocess(self, item, channel: ReportChannel) -> Ran:
        started_in = str(item.config.invocation_params.dir)  # the inner pytest's arguments need it
        try:
            spec = self._spec(item, channel, inner_argv(item), workdir=started_in, env={ENV: INSIDE})
        except SpecError as exc:
            return Ran(b"", None, "subprocess", reason=f"sandbox spec: {exc}")
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
             go: tuple[int, int] | None = None, ahead: Callable[[], None] = lambda: None,
             exited: Callable[[], None] = lambda: None, keep_output: bool = False) -> Ran:
        """Run the sandbox to its end and give back what the test wrote and how it ended.

        ``go``: a prepared sandbox's pipe, written to let its test start, and
        the position of the test after it; ``ahead`` runs once
        pytest_sandbox_ready was called, ``exited`` once the test ended,
        before the teardown (see ``_fork_hooks``); ``keep_output``: the
        output pytest did not capture inside comes back too.
        """
        result, reason = None, None

        def on_started(_box: Sandbox) -> None:
            if go is not None:
                _go(*go)
            item.config.hook.pytest_sandbox_ready(item=item, sandbox=box)
            ahead()

        try:
            result = box.run(on_started=on_started, on_exited=lambda _box: exited(), stop=self.stop)
        except SandboxError as exc:
            reason = f"sandbox: could not run the test: {exc}"
        except STOPPED as exc:
            reason = f"sandbox: the test was stopped from outside its sandbox: {exc}"
        if self.stop is not None and self.stop.received:
            reason = "sandbox: the test was stopped from outside its sandbox"
        if result is not None:
            item.config.hook.pytest_sandbox_result(item=item, result=result)
        output = {}
        if keep_output and result is not None:
            output = {"stdout": result.stdout, "stderr": result.stderr}
        return Ran(channel.data(), result, path, reason, output)

    def _fork_hooks(self, item, nextitem, after) -> dict:
        """What the fork path adds around a test: the next test's sandbox, made while
        this one runs and let go as soon as this one has ended; the uncaptured output."""
        return {"ahead": lambda: self._prepare(item, nextitem),
                "exited": lambda: self._go_early(item, nextitem, after), "keep_output": True}

    # -- the next test's sandbox, made ahead -------------------------------------

    def _prepare(self, item, nextitem) -> None:
        """Make ``nextitem``'s sandbox now, its process held before the test, if that is safe."""
        if (nextitem is None or self._next is not None or not wants_sandbox(nextitem)
                or os.environ.get(PREPARE_ENV) == "0" or not single_threaded()):
            return
        stack = tuple(item.session._setupstate.stack)
        chain = nextitem.listchain()
        if self._position(nextitem) is None or any(node not in chain for node in stack):
            return  # its copy of this session would differ from the one at its turn
        channel = ReportChannel()
        go_r, go_w = os.pipe2(os.O_CLOEXEC)
        box = None
        try:
            box = self._forked_box(nextitem, None, channel, wait_for_go=True, stdin_fd=go_r)
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

    def _go_position(self, nextitem) -> int:
        """What the go message names: the position of ``nextitem`` (-1: none)."""
        if nextitem is None:
            return -1
        position = self._position(nextitem)
        return -1 if position is None else position

    def _item_after(self, item):
        """The item after ``item`` in this session (None: the last, or no item), UNKNOWN if
        ``item`` is not one of this session's."""
        if item is None:
            return None
        items = item.session.items
        i = self._position(item)
        if i is None:
            return UNKNOWN
        return items[i + 1] if i + 1 < len(items) else None

    def _go_early(self, item, nextitem, after) -> None:
        """Let the next test's prepared process start now, while this one's sandbox is torn
        down and its reports logged, when the test after it is known and nothing that
        happens meanwhile can stop it."""
        prepared = self._next
        config = item.config
        if (prepared is None or prepared.go < 0 or prepared.item is not nextitem
                or after is UNKNOWN or (after is not None and self._position(after) is None)
                or config.option.maxfail or config.getoption("stepwise", False)
                or item.session.shouldstop or item.session.shouldfail):
            return
        _go(prepared.go, self._go_position(after))
        self._next = prepared._replace(go=-1)

    def _take_prepared(self, item, nextitem) -> Prepared | None:
        """The sandbox made ahead for ``item``, if the session is still as it was then (and
        its go message can name ``nextitem``)."""
        prepared, self._next = self._next, None
        if prepared is None:
            return None
        if (prepared.item is item and tuple(item.session._setupstate.stack) == prepared.stack
                and (nextitem is None or self._position(nextitem) is not None)):
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


def _go(fd: int, after: int) -> None:
    """Let a prepared sandbox's test run, the item at position ``after`` next (-1: none;
    ``fd`` -1: it was let go early)."""
    if fd < 0:
        return
    try:
        os.write(fd, b"g%d" % after)
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
