"""Kernel.set_environ: a forked target's environment made exactly the plan's (no root)."""

from __future__ import annotations

import os
import subprocess

import pytest

from sandbox.process.kernel import Kernel


def replace_environ(env):
    Kernel().set_environ(env)


@pytest.fixture
def saved_environ():
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


def test_names_are_removed_changed_and_added_in_python_and_for_children(saved_environ):
    env = {**os.environ, "SANDBOX_T_NEW": "new", "PATH": "/usr/bin:/bin"}
    env.pop("HOME", None)
    os.environ["SANDBOX_T_GONE"] = "x"  # set now, not in env: to be removed

    replace_environ(env)

    assert dict(os.environ) == env
    script = 'echo "$SANDBOX_T_NEW|$PATH|${HOME-unset}|${SANDBOX_T_GONE-unset}"'
    seen = subprocess.run(["/bin/sh", "-c", script], capture_output=True, text=True,
                          check=True).stdout.strip()
    assert seen == "new|/usr/bin:/bin|unset|unset"


def test_an_unchanged_environment_is_not_written(saved_environ, monkeypatch):
    writes = []
    monkeypatch.setattr(os, "putenv", lambda *args: writes.append(args))
    monkeypatch.setattr(os, "unsetenv", lambda *args: writes.append(args))
    replace_environ(dict(os.environ))
    assert writes == []


def test_values_that_are_not_utf8_survive(saved_environ):
    odd = os.fsdecode(b"caf\xe9")  # a latin-1 byte: kept as a surrogate escape
    replace_environ({**os.environ, "SANDBOX_T_ODD": odd})
    assert os.environb[b"SANDBOX_T_ODD"] == b"caf\xe9"
