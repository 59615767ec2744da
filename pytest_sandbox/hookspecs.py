"""The pluggy hooks through which conftest.py files and plugins take part.

Added with ``pluginmanager.add_hookspecs`` in ``pytest_configure``. Each
docstring below is the documentation of its hook.
"""

from __future__ import annotations

import pytest


@pytest.hookspec
def pytest_sandbox_spec(item, fields):
    """Change the spec a sandbox for ``item`` will be made from, in place.

    Called in the pytest process before every sandbox the plugin makes: the
    one a ``@pytest.mark.sandbox`` test runs in, and each made by the
    ``sandbox`` / ``sandbox_factory`` fixtures. ``fields`` is a dict of
    :class:`sandbox.SandboxSpec` keyword arguments, already holding the
    defaults, the command-line/ini options and the marker's values::

        fields["image"]            # "host" unless chosen
        fields["limits"]           # dict of sandbox.Limits arguments
        fields["mounts"]           # list of sandbox.Mount (append to add one)
        fields["env"], fields["network"], fields["hostname"], ...

    Edit it in place (e.g. ``fields["limits"]["memory"] = "512m"``). The
    return value is ignored. The dict is validated once after all hooks
    ran; a bad value fails that test with the SpecError's message. With
    ``--sandbox-redis`` it is called for each test's job too: image, limits,
    env, userns and seccomp (``default`` or ``unconfined``) travel to the
    worker; mounts, network, hostname, user and a seccomp profile file cannot.
    """


@pytest.hookspec
def pytest_sandbox_ready(item, sandbox):
    """A sandbox for ``item`` is running; ``sandbox`` is a :class:`sandbox.Sandbox`.

    Called in the pytest process. For a marked test it comes as soon as the
    test's process exists, in the sandbox's cgroup or on its way in
    (``sandbox.id``, ``sandbox.spec`` and ``sandbox.cgroup`` are useful);
    for the fixtures, before the test gets the sandbox. Not called for tests
    dispatched to remote workers.
    """


@pytest.hookspec
def pytest_sandbox_result(item, result):
    """A sandbox run for ``item`` ended with ``result`` (a :class:`sandbox.Result`).

    Called in the pytest process once per marked test (with the exit status,
    limits hit, peak memory, cpu time of its sandbox) and once per command
    run through the ``sandbox`` fixtures. For a test dispatched to a worker
    (``--sandbox-redis``) it is the Result of its job's step there, with the
    output its job's log carried. The return value is ignored.
    """
