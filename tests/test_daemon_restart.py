"""A daemon killed with SIGKILL mid-run, then started again: nothing leaked, jobs complete."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

from .daemon_support import Daemon, local_cli, wait_status
from .jobs_support import queue, redis_url, workers  # noqa: F401 - fixtures

pytestmark = pytest.mark.root

JOB = (b'name = "survivor"\nimage = "busybox"\n[[steps]]\nname = "slow"\n'
       b'run = "echo start; sleep 2; echo end"\n')


def test_sigkill_then_restart(tmp_path, needs_root, redis_url, queue, workers):
    d = Daemon(tmp_path, redis=redis_url).start()
    with d.unix() as c:
        sid = c.post("/v1/sandboxes", params={"start": "true"},
                     json={"image": "busybox", "command": ["sleep", "600"]}).json()["id"]
        job_id = c.post("/v1/jobs", params={"queue": queue},
                        files={"job": ("j.toml", JOB)}).json()["jobs"][0]["id"]
    workers.start("--burst")
    state = os.path.join(os.environ["SANDBOX_RUN_DIR"], "sandboxes", sid)
    assert os.path.isdir(state)
    d.stop(signal.SIGKILL)
    assert os.path.exists(d.socket)  # what a killed daemon leaves: its socket, the state dir
    d.start()  # its gc removes the orphan; the stale socket is replaced
    assert not os.path.exists(state)
    with d.unix() as c:
        # the killed daemon's sandbox is gone (the worker's step may still be listed: it is
        # a live sandbox of this host, which a local `sandbox ps` shows too)
        listed = c.get("/v1/sandboxes", params={"all": "true"}).json()
        assert sid not in [s["id"] for s in listed]
        assert all(s["command"][:2] == ["sh", "-ec"] for s in listed)
        fields = wait_status(c, job_id)
        assert fields["status"] == "passed"
        with c.stream("GET", f"/v1/jobs/{job_id}/log") as r:
            events = [json.loads(line[6:]) for line in r.iter_lines() if line.startswith("data: ")]
        assert "".join(e["data"] for e in events if e["kind"] == "out") == "start\nend\n"
    assert d.stop() == 0
    assert not os.path.exists(d.socket)


def test_a_second_daemon_on_a_live_socket_is_refused(tmp_path, needs_root):
    d = Daemon(tmp_path).start()
    try:
        second = subprocess.run([sys.executable, "-m", "sandbox", "daemon", "--socket", d.socket],
                                env=d.env, capture_output=True, text=True, timeout=60)
        assert second.returncode == 125
        assert f"a daemon already listens on {d.socket}" in second.stderr
        with d.unix() as c:
            assert c.get("/v1/health").status_code == 200
    finally:
        assert d.stop() == 0


SERVICE = "echo up; trap 'echo down; exit 3' TERM; while :; do sleep 0.05; done"


def test_a_detached_sandbox_outlives_a_daemon_killed_with_sigkill(tmp_path, needs_root,
                                                                  monkeypatch):
    """`run -d` through the daemon hands the sandbox to a supervisor: the daemon killed with
    SIGKILL and started again finds it running, still its maker's, and acts on it."""
    monkeypatch.setenv("SANDBOX_STATE_DIR", str(tmp_path / "state"))
    d = Daemon(tmp_path, tcp=True).start()
    try:
        alice, bob = d.token("alice", "run", "read"), d.token("bob", "run", "read")
        made = d.cli("run", "-d", "--name", "keep", "busybox", "--", "sh", "-c", SERVICE,
                     token=alice)
        assert made.returncode == 0, made.stderr
        sid = made.stdout.decode().strip()
        d.stop(signal.SIGKILL)
        d.start()  # its gc leaves a sandbox whose supervisor lives alone
        assert local_cli("ps", "-q").stdout.decode().split() == [sid]  # the host's one truth
        assert d.cli("ps", "-q", token=alice).stdout.decode().split() == [sid]
        assert d.cli("ps", "-q", "-a", token=bob).stdout.split() == []
        out = d.cli("exec", "keep", "sh", "-c", "echo from-exec", token=alice)
        assert (out.returncode, out.stdout) == (0, b"from-exec\n")
        refused = d.cli("stop", "keep", token=bob)
        assert refused.returncode == 125 and b"no such sandbox: keep" in refused.stderr
        assert d.cli("stop", "keep", token=alice).stdout == b"keep\n"
        assert d.cli("wait", "keep", token=alice).stdout == b"3\n"
        assert d.cli("logs", "keep", token=alice).stdout == b"up\ndown\n"
        assert d.cli("rm", "keep", token=alice).stdout.decode().strip() == sid
    finally:
        local_cli("rm", "-f", "keep")
        assert d.stop() == 0
