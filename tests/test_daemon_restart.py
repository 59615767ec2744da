"""A daemon killed with SIGKILL mid-run, then started again: nothing leaked, jobs complete."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

from .daemon_support import Daemon, wait_status
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
