"""Which process forks a marked test's process: pytest, or a fork server made from it.

A fork makes the forking process copy every page it writes afterwards
(~4 ms of pytest's time per test). So from the second sandboxed test in a
row on, the tests' processes are forked by a *fork server*
(``sandbox.process.forkserver``): a copy of pytest made at that point. Its
copy is the session as it was then, so it only stands while nothing runs in
pytest itself: it is ended as soon as a test ran in pytest since (an
unsandboxed one) or the fixtures pytest has set up changed, and a new one
is made at the next sandboxed test that follows another.

In a session's twin (``pytest_sandbox.twin``) nothing ever runs in the
session itself, so its server is made at the first test and stands for
all (``stable``).

Tests are named to the server by their positions in ``session.items``.
``PYTEST_SANDBOX_FORK_SERVER=0`` turns the server off.
"""

from __future__ import annotations

import os
from functools import partial

from sandbox import ForkServer, HostError, ServedTarget, single_threaded

from .. import inside

#: Set to 0 to fork every test's process from pytest, with no fork server.
SERVER_ENV = "PYTEST_SANDBOX_FORK_SERVER"


class Forker:
    """Builds each marked test's target, served by a fork server while its copy stands."""

    def __init__(self, *, stable: bool = False) -> None:
        self._stable = stable  # the session never runs a test itself: its copy always stands
        self._server: ForkServer | None = None
        self._server_stack: tuple = ()  # pytest's set-up nodes when the server was made
        self._last: int | None = None  # the position of the last item run
        self._streak = 0  # sandboxed items in a row, ending with that one

    def follow(self, item, position: int | None) -> None:
        """Note that ``item`` (at ``position``) runs now; end a server whose copy no longer stands."""
        if self._stable:
            return
        follows = position is not None and self._last is not None and position == self._last + 1
        self._streak = self._streak + 1 if follows else 1
        self._last = position
        if self._server is not None and (
                not follows or tuple(item.session._setupstate.stack) != self._server_stack):
            self.close()

    def target(self, item, nextitem, positions: tuple[int | None, int | None],
               wait_for_go: bool):
        """What ``item``'s sandbox runs: its phases (``inside.run_item``), by the server
        when there is one or one can be made now; ``positions``: of item and nextitem
        (with ``wait_for_go``, the go message names the next item instead)."""
        local = partial(inside.run_item, item, nextitem, wait_for_go=wait_for_go)
        position, next_position = positions
        ahead = 1 if wait_for_go else 0  # made while the item before it runs
        if ((self._streak + ahead < 2 and not self._stable) or os.environ.get(SERVER_ENV) == "0"
                or position is None or (nextitem is not None and next_position is None)):
            return local
        if self._server is None:
            if not single_threaded():
                return local
            try:
                self._server = ForkServer(partial(_served, item.session.items))
            except (HostError, OSError):
                return local
            self._server_stack = tuple(item.session._setupstate.stack)
        return ServedTarget(self._server, (position, next_position, wait_for_go), local)

    def close(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()


def _served(items: list, key: tuple):
    """In the fork server: the target a key names (positions of the item and its next one)."""
    position, next_position, wait_for_go = key
    nextitem = None if next_position is None else items[next_position]
    return partial(inside.run_item, items[position], nextitem, wait_for_go=wait_for_go)
