"""pytest entry point (pytest11 ``sandbox``): options, the marker, the hooks.

A test marked ``@pytest.mark.sandbox(...)`` (or every test, with
``--sandbox``) is taken out of pytest's normal protocol here: a *runner*
(``pytest_sandbox.where``) runs its setup, call and teardown somewhere
isolated and returns everything the run reported (``events``), which is
then replayed to this process's hooks as if the test had run here
(``replay``). Tests that use the ``sandbox`` fixtures are not
themselves sandboxed: for them the marker only sets the fixtures' options.
"""

from __future__ import annotations

import sys

import pytest
from _pytest.runner import CallInfo

from . import hookspecs, probe
from .fixtures import sandbox, sandbox_factory, sandbox_images  # noqa: F401 - the fixtures
from .options import MARKER_HELP, add_options, wants_sandbox
from .replay import replay
from .settings import option
from .where import Outcome, Runner

RUNNER = pytest.StashKey[Runner]()


def pytest_addhooks(pluginmanager) -> None:
    pluginmanager.add_hookspecs(hookspecs)


def pytest_addoption(parser) -> None:
    add_options(parser)


def pytest_configure(config) -> None:
    config.addinivalue_line("markers", MARKER_HELP)
    url = config.getoption("sandbox_redis", None)
    if url:
        from .where.remote import QueueRunner

        config.stash[RUNNER] = QueueRunner(config, url, queue=option(config, "queue"))
    else:
        from .where.local import LocalRunner

        config.stash[RUNNER] = LocalRunner(config, fork=not config.getoption("sandbox_no_fork"))


def pytest_unconfigure(config) -> None:
    runner = config.stash.get(RUNNER, None)
    if runner is not None:
        runner.close()


@pytest.hookimpl(trylast=True)
def pytest_collection_finish(session) -> None:
    """Tell the runner which tests it will get, so a remote one can submit them all at once.

    A pytest-xdist worker collects every test but runs only those it is
    sent: its runner learns of each test when the test's turn comes, and
    only hears what was collected.
    """
    config = session.config
    if config.option.collectonly:
        return
    if session.testsfailed and not config.option.continue_on_collection_errors:
        return  # pytest stops before running anything
    items = [item for item in session.items if wants_sandbox(item)]
    if hasattr(config, "workerinput"):
        config.stash[RUNNER].collected(items)
    else:
        config.stash[RUNNER].expect(items)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_protocol(item, nextitem):
    if not wants_sandbox(item):
        return None
    runner = item.config.stash[RUNNER]
    reason = probe.why_not() if runner.needs_host_sandboxes else None
    if reason and not item.config.getoption("sandbox_strict"):
        item.add_marker(pytest.mark.skip(reason=reason))
        return None
    item.ihook.pytest_runtest_logstart(nodeid=item.nodeid, location=item.location)
    if reason:
        from . import crash

        outcome = Outcome(crash.complete(item, [], None, reason=f"--sandbox-strict: {reason}"))
    else:
        outcome = runner.run(item, nextitem)
    _show_output(item, outcome)
    replay(item, outcome.events)
    _teardown_here(item, nextitem)
    item.ihook.pytest_runtest_logfinish(nodeid=item.nodeid, location=item.location)
    return True


def _show_output(item, outcome: Outcome) -> None:
    """Output pytest did not capture inside (e.g. with -s): shown here, or attached."""
    capture = item.config.getoption("capture", "fd")
    for stream, data in outcome.output.items():
        if not data:
            continue
        text = data.decode("utf-8", "replace")
        if capture == "no":
            getattr(sys, stream).write(text)
        elif outcome.reports:
            outcome.reports[-1].sections.append((f"Captured {stream} (sandbox)", text))


def _teardown_here(item, nextitem) -> None:
    """Tear down, in this process, the fixtures of this process ``nextitem`` does not need.

    The sandboxed copy of the session tore down only what it set up itself
    (see ``inside``); fixtures set up here by earlier tests end here.
    """
    if item.session.shouldfail or item.session.shouldstop:
        nextitem = None
    call = CallInfo.from_call(lambda: item.session._setupstate.teardown_exact(nextitem),
                              when="teardown", reraise=(pytest.exit.Exception, KeyboardInterrupt))
    if call.excinfo is not None:
        report = item.ihook.pytest_runtest_makereport(item=item, call=call)
        item.ihook.pytest_runtest_logreport(report=report)
