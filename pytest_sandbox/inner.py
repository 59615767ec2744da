"""The pytest that runs one test inside a sandbox: its command and its plugin.

``inner_argv`` is the command (``python -m pytest ... NODEID``) the slow
local path and the job queue's workers run. It loads this module with
``-p pytest_sandbox.inner`` (and ``-p no:sandbox``, so the test is not
sandboxed again). The plugin registers the options, the marker and the
hookspecs, so ini files, ``--strict-markers`` and conftest hooks behave as
in the outer session, and appends each report to the report channel.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from . import hookspecs
from .channel import INSIDE, write_report
from .options import MARKER_HELP, add_options

#: The report directory inside the sandbox (set by the outer session).
ENV = "PYTEST_SANDBOX_REPORTS"


def pytest_addhooks(pluginmanager) -> None:
    pluginmanager.add_hookspecs(hookspecs)


def pytest_addoption(parser) -> None:
    add_options(parser)


def pytest_configure(config) -> None:
    config.addinivalue_line("markers", MARKER_HELP)
    config.pluginmanager.register(ReportWriter(config, os.environ.get(ENV, INSIDE)),
                                  "sandbox-report-writer")


class ReportWriter:
    """Sends every report of this inner session to the outer one."""

    def __init__(self, config, directory: str) -> None:
        self.config = config
        self.directory = directory

    def pytest_runtest_logreport(self, report) -> None:
        write_report(self.config, report, self.directory)


def inner_argv(item, *, python: str = sys.executable, rootdir: str | None = None) -> list[str]:
    """The pytest command that runs just ``item`` inside a sandbox.

    ``rootdir`` is where the session's rootdir appears in there: the same
    path in a local sandbox (the default), ``/workspace`` on a worker. The
    ini file is passed along when the sandbox can see it.
    """
    config = item.config
    there = rootdir or str(config.rootpath)
    argv = [python, "-m", "pytest", "-p", "no:sandbox", "-p", __name__,
            "-p", "no:cacheprovider", "-o", "addopts=", "-q", "--no-header", "--rootdir", there]
    inifile = _inifile_there(config, there)
    if inifile:
        argv += ["-c", inifile]
    for name in explicit_plugins(config.invocation_params.args):
        argv += ["-p", name]
    return [*argv, item.nodeid]


def _inifile_there(config, rootdir: str) -> str | None:
    """The ini file's path in the sandbox; None when it lies outside a moved rootdir."""
    if not config.inipath:
        return None
    if rootdir == str(config.rootpath):
        return str(config.inipath)
    try:
        return str(Path(rootdir) / Path(config.inipath).relative_to(config.rootpath))
    except ValueError:
        return None


def explicit_plugins(args) -> list[str]:
    """Plugins the outer session was given with ``-p NAME`` (except ``no:`` and this one)."""
    args = [str(a) for a in args]
    names = []
    for i, arg in enumerate(args):
        if arg == "-p" and i + 1 < len(args):
            names.append(args[i + 1])
        elif arg.startswith("-p") and len(arg) > 2:
            names.append(arg[2:])
    return [n for n in names if not n.startswith("no:") and n not in ("sandbox", "pytest_sandbox.plugin")]
