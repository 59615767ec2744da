"""--sandbox-redis across machines: a session's marked tests run on workers of two hosts.

The hosts are network namespaces on one simulated LAN (tests/hosts_support.py): Redis
and the pytest session on the first, one `sandbox worker` on each of the two others,
each with its own state roots. The session cuts one batch per listening worker, so
each host runs part of the tests, and the reports come back as a local run gives them.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time

import pytest

from jobs import store

from .hosts_support import Lan, LanRedis, worker_command
from .jobs_support import ROOT, env

pytest_plugins = ["pytester"]
pytestmark = pytest.mark.root

QUEUE = "hosts"
#: Batches fork each test into nested namespaces, which the default seccomp profile
#: refuses inside a sandbox (see tests/test_plugin_dispatch.py): unconfined here.
CONFTEST = f"""
def pytest_sandbox_spec(item, fields):
    fields["env"]["PYTHONPATH"] = {ROOT!r}
    fields["seccomp"] = "unconfined"
"""
SUITE = """
import os, socket, time, pytest

@pytest.mark.sandbox
@pytest.mark.parametrize("i", range(8))
def test_in_its_own_pid_namespace(i):
    time.sleep(0.2)
    assert os.getppid() == 1

@pytest.mark.sandbox
def test_fails_on_whichever_host():
    assert socket.gethostname() == "nowhere"

def test_plain_runs_in_the_session():
    pass
"""


@pytest.fixture
def hosts(tmp_path):
    """Three hosts: Redis and the session on the first, a worker on each of the others."""
    lan = Lan(tmp_path / "lan").start()
    server = LanRedis(lan).start()
    procs = []
    try:
        for index in (1, 2):
            procs.append(lan.popen(index, worker_command(server.url, QUEUE, f"w{index}"),
                                   tmp_path / f"worker{index}.log"))
        yield lan, server
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        server.stop()
        lan.stop()


def listening(conn, count: int, timeout: float = 120) -> None:
    """Wait until ``count`` workers listen: the session cuts one batch per listening worker."""
    from rq import Queue, Worker

    deadline = time.monotonic() + timeout
    while Worker.count(queue=Queue(QUEUE, connection=conn)) < count:
        assert time.monotonic() < deadline, f"{count} workers never listened on {QUEUE}"
        time.sleep(0.1)


def test_a_sessions_batches_run_on_both_hosts_and_report_as_one_run(pytester, hosts):
    lan, server = hosts
    conn = server.client()
    listening(conn, 2)
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(SUITE)
    session = subprocess.run(
        ["nsenter", f"--net=/run/netns/{lan.hosts[0]}", "--", sys.executable, "-m", "pytest",
         "-p", "no:cacheprovider", "-rA", "--sandbox-redis", server.url, "--sandbox-queue", QUEUE],
        cwd=pytester.path, env=env(), capture_output=True, text=True, timeout=600)
    summary = session.stdout.strip().splitlines()[-1]
    assert re.search(r"\b1 failed, 9 passed\b", summary), session.stdout[-3000:] + session.stderr[-2000:]
    assert re.search(r"^FAILED \S+::test_fails_on_whichever_host", session.stdout, re.MULTILINE)
    jobs = [job for job in store.list_jobs(conn, 100) if job.get("queue") == QUEUE]
    assert {job.get("worker") for job in jobs} == {"w1", "w2"}, jobs  # each host took a batch
    # a batch passes when it ran its tests (their outcomes travel per test): none cancelled
    assert [job["status"] for job in jobs] == ["passed", "passed"], jobs
    assert lan.sandboxes(1) == [] and lan.sandboxes(2) == []
