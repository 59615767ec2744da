"""Plugin for the pytest that runs inside a sandbox on the slow path.

Loaded with ``-p pytest_sandbox.inner`` (and ``-p no:sandbox``, so the test
is not sandboxed again). It registers the options, the marker and the
hookspecs, so ini files, ``--strict-markers`` and conftest hooks behave as
in the outer session, and appends each report to the report channel.
"""

from __future__ import annotations

import os

from . import hookspecs
from .channel import INSIDE, write_report

#: The report directory inside the sandbox (set by the outer session).
ENV = "PYTEST_SANDBOX_REPORTS"


def pytest_addhooks(pluginmanager) -> None:
    pluginmanager.add_hookspecs(hookspecs)


def pytest_addoption(parser) -> None:
    from .plugin import add_options

    add_options(parser)


def pytest_configure(config) -> None:
    from .plugin import MARKER_HELP

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
