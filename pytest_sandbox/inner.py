"""The pytest that runs one test inside a sandbox: its command and its plugin.

``inner_argv`` is the command the slow local path and the job queue's
workers run: ``python -m pytest`` with the arguments the outer session was
given (as pytest-xdist gives its workers theirs), so ``-W``, ``--tb``,
``-v``, plugins' options and the ini file shape the test here as there,
and the one test to run (``--sandbox-item``), which replaces the outer's
paths. It loads this module with ``-p pytest_sandbox.inner`` (and
``-p no:sandbox``, so the test is not sandboxed again). The plugin
registers the options, the marker and the hookspecs, turns off what only
the outer session does (``OUTER_ONLY``: it writes the JUnit XML, hands
tests to pytest-xdist's workers, ...), and sends what shows the test to
the report directory, as the forked path does (``inside.show_only_to``).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from . import hookspecs
from .channel import INSIDE
from .inside import prepare, register_recorder, show_only_to
from .options import MARKER_HELP, add_options

#: The report directory inside the sandbox (set by the outer session).
ENV = "PYTEST_SANDBOX_REPORTS"
#: The option naming the test to run (its nodeid).
ITEM_OPTION = "--sandbox-item"
#: pytest's cache in here: the sandbox's own /tmp (the rootdir may be read-only here).
CACHE_DIR = "/tmp/.pytest-sandbox-cache"
#: Options only the outer session acts on, and their values in here.
OUTER_ONLY: dict[str, Any] = {
    "xmlpath": None, "htmlpath": None, "report_log": None,  # report files
    "numprocesses": None, "maxprocesses": None, "dist": "no", "distload": False,  # pytest-xdist
    "tx": [],
    "looponfail": False,
    "usepdb": False, "trace": False,  # a debugger needs the terminal
    "lf": False, "failedfirst": False, "newfirst": False,  # which tests, in which order
    "stepwise": False, "stepwise_skip": False, "cacheshow": False, "cacheclear": False,
}


def pytest_addhooks(pluginmanager) -> None:
    pluginmanager.add_hookspecs(hookspecs)


def pytest_addoption(parser) -> None:
    add_options(parser)
    parser.addoption(ITEM_OPTION, dest="sandbox_item", help=argparse.SUPPRESS)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_cmdline_main(config):
    """Before any plugin acts on its options: turn off what only the outer session does."""
    not_outer(config)
    basetemp = config.option.basetemp
    if basetemp and not _writable(Path(config.invocation_params.dir, basetemp)):
        config.option.basetemp = None  # a fresh one under this sandbox's /tmp
    return (yield)


def item_path(config, nodeid: str) -> str:
    """The nodeid (relative to the rootdir) as a collection argument from any directory."""
    path, sep, rest = nodeid.partition("::")
    return f"{config.rootpath / path}{sep}{rest}"


def not_outer(config) -> None:
    """Turn off the options only the outer session acts on (``OUTER_ONLY``)."""
    for name, value in OUTER_ONLY.items():
        if hasattr(config.option, name):
            setattr(config.option, name, value)


def pytest_configure(config) -> None:
    config.addinivalue_line("markers", MARKER_HELP)
    nodeid = config.getoption("sandbox_item")
    if nodeid:
        config.args = [item_path(config, nodeid)]


@pytest.hookimpl(tryfirst=True)
def pytest_runtestloop(session) -> None:
    """Once every plugin and conftest is in: what shows the test goes to the report directory.
    Then pytest's own loop runs the test."""
    config = session.config
    recorder = register_recorder(config, os.environ.get(ENV, INSIDE))
    show_only_to(config, recorder, prepare(config))


def _writable(path: Path) -> bool:
    """Whether ``path`` could be made, or emptied, here."""
    while not path.exists():
        path = path.parent
    return os.access(path if path.is_dir() else path.parent, os.W_OK)


def inner_argv(item, *, python: str = sys.executable, rootdir: str | None = None) -> list[str]:
    """The pytest command that runs just ``item`` inside a sandbox.

    ``rootdir`` is where the session's rootdir appears in there: the same
    path in a local sandbox (the default), ``/workspace`` on a worker. The
    ini file is passed along when the sandbox can see it.
    """
    return [*session_argv(item.config, python=python, rootdir=rootdir, plugin=__name__),
            f"{ITEM_OPTION}={item.nodeid}"]


def session_argv(config, *, python: str, rootdir: str | None, plugin: str) -> list[str]:
    """``python -m pytest`` with this session's arguments and ini file, where the
    rootdir appears at ``rootdir`` (None: here), without this plugin but with ``plugin``."""
    there = rootdir or str(config.rootpath)
    argv = [python, "-m", "pytest", "-p", "no:sandbox", "-p", plugin,
            *outer_args(config.invocation_params.args), "--no-header", "--rootdir", there]
    if config.pluginmanager.has_plugin("cacheprovider"):  # else its ini name is unknown
        argv += ["-o", f"cache_dir={CACHE_DIR}"]
    inifile = _inifile_there(config, there)
    if inifile:
        argv += ["-c", inifile]
    return argv


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


def outer_args(args) -> list[str]:
    """The outer session's arguments, less those that load this plugin (``-p sandbox``)."""
    args = [str(a) for a in args]
    kept: list[str] = []
    skip = False
    for i, arg in enumerate(args):
        if skip:
            skip = False
            continue
        if arg == "-p" and i + 1 < len(args) and args[i + 1] in THIS_PLUGIN:
            skip = True
        elif not (arg.startswith("-p") and arg[2:] in THIS_PLUGIN):
            kept.append(arg)
    return kept


THIS_PLUGIN = ("sandbox", "pytest_sandbox.plugin")
