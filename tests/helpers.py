"""Shared helpers for the integration tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def sandbox_cli(*args: str, input: bytes | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    """Run the `sandbox` command as a user would (python -m sandbox, this checkout)."""
    env = dict(os.environ, PYTHONPATH=REPO)
    return subprocess.run([sys.executable, "-m", "sandbox", *args], capture_output=True,
                          input=input, timeout=timeout, env=env)


def popen_cli(*args: str) -> subprocess.Popen:
    """The CLI as a user starts it from a shell: SIGINT at its default disposition. An
    ignored signal is inherited across exec, and a Python that starts with SIGINT ignored
    never raises KeyboardInterrupt; the Ctrl-C build test timed out in two whole-suite
    runs (never alone), so this rules out one cause: an ignore left in the test process."""
    env = dict(os.environ, PYTHONPATH=REPO)
    return subprocess.Popen([sys.executable, "-m", "sandbox", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env, preexec_fn=_default_sigint)


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def wait_for(predicate, timeout: float = 30.0, interval: float = 0.02):
    """Poll until predicate() is truthy; returns its value (raises on timeout)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s: {predicate}")


def live_name(pid: int) -> str | None:
    """A process's name (comm); None once it is gone (a zombie counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            name, rest = f.read().rsplit(")", 1)
    except FileNotFoundError:
        return None
    return None if rest.split()[0] == "Z" else name.split("(", 1)[1]


#: ``-p no:`` options for the pytest sessions a test starts, for the plugins this machine has
#: only because other tests need them (schemathesis brings hypothesis, whose plugin imports
#: all of it at configure; pytest-benchmark for bench/; anyio, which imports trio, with
#: httpx): each session that loads them takes about three times the CPU to start, and what
#: the plugin's tests that start sessions check does not depend on them. The tests of how the
#: plugin fits among other plugins (test_plugin_options.py) and the real projects' suites
#: (test_plugin_suite.py) run with them loaded, as a user's session would.
UNRELATED_PLUGINS_OFF = ("-p", "no:hypothesispytest", "-p", "no:benchmark", "-p", "no:anyio")


#: What scripts/test-cache.sh fetched at setup for the tests (nothing is fetched while they run).
TEST_CACHE = os.environ.get("SANDBOX_TEST_CACHE", "/opt/sandbox-tests")


def cached(*parts: str) -> str:
    """A path in the test cache; skips the test, saying how to fill it, when it is missing."""
    import glob

    import pytest

    found = sorted(glob.glob(os.path.join(TEST_CACHE, *parts)))
    if not found:
        pytest.skip(f"{os.path.join(TEST_CACHE, *parts)} is missing: run scripts/test-cache.sh "
                    "(scripts/setup.sh does; SANDBOX_TEST_CACHE moves it)")
    return found[-1]
