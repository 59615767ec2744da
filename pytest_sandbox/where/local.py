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
"""

from __future__ import annotations

import os
import sys
from functools import partial

import pytest

import sandbox
from sandbox import Mount, Sandbox, SandboxError, SpecError
from sandbox.process.spawner import single_threaded

from .. import crash, inside
from ..channel import INSIDE, ReportChannel
from ..inner import ENV, inner_argv
from ..settings import base_fields, build_spec, host_env
from . import Outcome

#: Host paths the ``host`` image already shows (see sandbox.images.builtin).
HOST_IMAGE_PATHS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc", "/opt")
#: Never bind these over the sandbox's own.
NOT_MOUNTABLE = ("/", "/tmp", "/proc", "/sys", "/dev", "/run", "/var/tmp")
#: Exceptions that stop a test from outside its sandbox (pytest-timeout's signal method, say).
STOPPED = (Exception, pytest.fail.Exception, pytest.skip.Exception)


class LocalRunner:
    """Runs each item in a fresh sandbox on this host, fast when it can."""

    needs_host_sandboxes = True

    def __init__(self, config, *, fork: bool = True) -> None:
        self.config = config
        self.fork = fork

    def expect(self, items: list) -> None:
        pass  # each sandbox is made when its test's turn comes

    def run(self, item, nextitem) -> Outcome:
        with ReportChannel() as channel:
            if self.fork and single_threaded():
                return self._run_forked(item, nextitem, channel)
            return self._run_subprocess(item, channel)

    def close(self) -> None:
        pass

    # -- the two paths ---------------------------------------------------------

    def _run_forked(self, item, nextitem, channel: ReportChannel) -> Outcome:
        try:
            spec = self._spec(item, channel, ["pytest", item.nodeid], workdir=os.getcwd())
        except SpecError as exc:
            return Outcome(crash.complete(item, [], None, reason=f"sandbox spec: {exc}"), path="fork")
        box = Sandbox(spec, target=partial(inside.run_item, item, nextitem), log_file=False)
        return self._run(item, box, channel, "fork")

    def _run_subprocess(self, item, channel: ReportChannel) -> Outcome:
        rootdir = str(item.config.rootpath)
        try:
            spec = self._spec(item, channel, inner_argv(item), workdir=rootdir, env={ENV: INSIDE})
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

    def _run(self, item, box: Sandbox, channel: ReportChannel, path: str) -> Outcome:
        """Start the sandbox, wait for it, and turn whatever happened into reports."""
        result, reason = None, None
        try:
            with box:
                item.config.hook.pytest_sandbox_ready(item=item, sandbox=box)
                result = box.wait()
        except SandboxError as exc:
            reason = f"sandbox: could not run the test: {exc}"
        except STOPPED as exc:
            reason = f"sandbox: the test was stopped from outside its sandbox: {exc}"
        if result is not None:
            item.config.hook.pytest_sandbox_result(item=item, result=result)
        reports = crash.complete(item, channel.read(item.config), result, reason=reason)
        output = {}
        if path == "fork" and result is not None:
            output = {"stdout": result.stdout, "stderr": result.stderr}
        return Outcome(reports, result, path, output)


def code_mounts(config, image: str) -> list[Mount]:
    """The test's code where the sandbox expects it: rootdir, cwd, sys.path, read-only."""
    candidates = [str(config.rootpath), str(config.invocation_params.dir), os.getcwd(),
                  _package_parent(__file__, 3), _package_parent(sandbox.__file__, 2), *sys.path]
    if image != "host":
        candidates += [sys.prefix, sys.base_prefix]
    shown = HOST_IMAGE_PATHS + tuple(_python_prefixes()) if image == "host" else ()
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


def _python_prefixes() -> list[str]:
    return [os.path.realpath(p) for p in (sys.prefix, sys.base_prefix)]


def _within(path: str, parent: str) -> bool:
    return path == parent or path.startswith(parent.rstrip("/") + "/")
