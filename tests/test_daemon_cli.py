"""The CLI as a client of the daemon: each verb run both ways prints the same and exits the same."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from .daemon_support import Daemon, daemon, local_cli  # noqa: F401 - fixture
from .helpers import wait_for
from .jobs_support import env, job_file, queue, redis_url, workers  # noqa: F401 - fixtures

pytestmark = pytest.mark.root


def same(daemon, *args: str, input: bytes | None = None, normalize=lambda b: b):
    """Run a verb here and through the daemon; assert the same output and status; the local run."""
    here = local_cli(*args, input=input)
    there = daemon.cli(*args, input=input)
    assert (there.returncode, normalize(there.stdout), normalize(there.stderr)) == \
        (here.returncode, normalize(here.stdout), normalize(here.stderr)), args
    return here


def times(data: bytes) -> bytes:
    """Durations, sizes and times vary between two runs: blank them."""
    data = re.sub(rb"\d+(\.\d+)?(ms|s|m|h)\b", b"<t>", data)
    data = re.sub(rb"\b[0-9a-f]{12}\b", b"<id>", data)
    return re.sub(rb"\d+(\.\d+)? (B|KiB|MiB|GiB)", b"<size>", data)


def test_run(daemon):
    r = same(daemon, "run", "busybox", "--", "sh", "-c", "echo out; echo err >&2; exit 3")
    assert r.returncode == 3 and r.stdout == b"out\n"
    assert same(daemon, "run", "--memory", "lots", "busybox", "--", "true").returncode == 125
    assert same(daemon, "run", "busybox", "--", "no-such-command").returncode == 127
    assert same(daemon, "run", "--name", "bad/name", "busybox", "--", "true").returncode == 125
    assert same(daemon, "run", "-v", "rel:/x", "--", "busybox", "true").returncode != 0
    r = same(daemon, "run", "--timeout", "1s", "--stats", "busybox", "--", "sleep", "5",
             normalize=times)
    assert r.returncode == 137 and b"wall time limit" in r.stderr
    r = same(daemon, "run", "-i", "busybox", "--", "sh", "-c", "cat; echo end", input=b"in\n")
    assert r.stdout == b"in\nend\n"
    r = same(daemon, "run", "-e", "A=1", "-w", "/tmp", "--hostname", "h1", "busybox", "--",
             "sh", "-c", "echo $A $(pwd) $(hostname)")
    assert r.stdout == b"1 /tmp h1\n"


def test_ctrl_c_is_forwarded(daemon):
    proc = subprocess.Popen([sys.executable, "-m", "sandbox", "run", "busybox", "--", "sh", "-c",
                             "echo up; sleep 60"], env=dict(daemon.env, SANDBOX_HOST=daemon.host),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout.readline() == b"up\n"
    proc.send_signal(2)
    assert proc.wait(30) == 130
    proc.stdout.close()
    proc.stderr.close()
    with daemon.unix() as c:
        wait_for(lambda: c.get("/v1/sandboxes").json() == [])


def test_ps_logs_rm_of_a_running_sandbox(daemon):
    same(daemon, "ps")
    holder = subprocess.Popen([sys.executable, "-m", "sandbox", "run", "--name", "held", "busybox",
                               "--", "sh", "-c", "echo hello; sleep 60"], env=env(),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert holder.stdout.readline() == b"hello\n"
        assert same(daemon, "ps", "-q").stdout.strip()
        same(daemon, "ps", normalize=lambda b: re.sub(rb"\d+s ago", b"<ago>", b))
        assert same(daemon, "logs", "held").stdout == b"hello\n"
        r = same(daemon, "rm", "held")
        assert r.returncode == 125 and b"is running" in r.stderr
        assert same(daemon, "rm", "no-such").returncode == 125
        removed = daemon.cli("rm", "-f", "held")
        assert removed.returncode == 0 and removed.stdout.strip()
    finally:
        try:
            holder.wait(30)
        except subprocess.TimeoutExpired:
            holder.kill()
            holder.wait()
        holder.stdout.close()
        holder.stderr.close()
    assert holder.returncode == 137


def test_images_and_networks(daemon):
    same(daemon, "images")
    same(daemon, "image", "inspect", "busybox")
    assert same(daemon, "image", "inspect", "nope:1").returncode == 125
    assert same(daemon, "rmi", "nope:1").returncode == 125
    assert local_cli("network", "create", "clinet").returncode == 0
    try:
        same(daemon, "network", "ls")
    finally:
        out = daemon.cli("network", "rm", "clinet")
    assert out.returncode == 0 and out.stdout == b"removed clinet\n"
    assert same(daemon, "network", "rm", "clinet").returncode == 125


def test_verbs_without_a_remote_form_say_so(daemon):
    out = daemon.cli("tag", "busybox", "mine:1")
    assert out.returncode == 125
    assert out.stderr == (b"sandbox: error: `sandbox tag` does not go through a daemon yet: run it "
                          b"without SANDBOX_HOST/--host, on the daemon's host\n")


def test_submit_in_process(daemon, tmp_path):
    path = job_file(tmp_path, """
        name = "both ways"
        image = "busybox"
        workspace = "ws"
        [[steps]]
        name = "show"
        run = "cat data.txt; echo to-stderr >&2"
        [results]
        artifacts = ["data.txt"]
    """, {"data.txt": "from the workspace\n"})
    r = same(daemon, "submit", path, normalize=times)
    assert r.returncode == 0 and b"from the workspace" in r.stdout
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x"\n[[steps]]\nname = "s"\nrun = "true"\ntimeout = "soon"\n')
    r = same(daemon, "submit", str(bad))
    assert r.returncode == 125 and b"steps[0].timeout" in r.stderr


def test_jobs_verbs_through_redis(tmp_path, needs_root, redis_url, queue, workers, monkeypatch):
    monkeypatch.setenv("SANDBOX_REDIS_URL", redis_url)
    d = Daemon(tmp_path, redis=redis_url).start()
    try:
        workers.start("--burst")
        path = job_file(tmp_path, """
            name = "queued"
            image = "busybox"
            [[steps]]
            name = "hi"
            run = "echo queued-output"
        """)
        sub = d.cli("submit", "--queue", queue, "--follow", path)
        assert sub.returncode == 0, sub.stderr
        job_id = sub.stdout.split()[0].decode()
        assert b"queued-output" in sub.stdout
        for args in (("jobs", "show", job_id), ("jobs", "logs", job_id), ("jobs", "wait", job_id),
                     ("jobs", "show", "--json", job_id), ("jobs", "cancel", job_id),
                     ("jobs", "show", "nope")):
            here = local_cli(*args[:1], "--redis", redis_url, *args[1:])
            there = d.cli(*args)
            assert (there.returncode, there.stdout, there.stderr) == \
                (here.returncode, here.stdout, here.stderr), args
        assert job_id.encode() in d.cli("jobs", "list").stdout
    finally:
        assert d.stop() == 0


#: A service that says when it starts and ends with 3 on SIGTERM.
SERVICE = "echo up; trap 'echo down; exit 3' TERM; while :; do sleep 0.05; done"


def lifecycle_script(cli) -> list:
    """`run -d` and the verbs on it, through ``cli``: each verb's (status, stdout, stderr)."""
    steps = [
        ("run", "-d", "--name", "svc", "busybox", "--", "sh", "-c", SERVICE),
        ("exec", "svc", "sh", "-c", "echo out; echo err >&2; exit 4"),
        ("exec", "-i", "svc", "sh", "-c", "cat; echo end"),
        ("exec", "-e", "A=1", "-w", "/tmp", "-u", "1:2", "svc", "sh", "-c", "echo $A $(pwd) $(id -u):$(id -g)"),
        ("exec", "svc", "no-such-command"),
        ("exec", "svc"),
        ("kill", "-s", "NOPE", "svc"),
        ("stop", "-t", "10", "svc"),
        ("wait", "svc"),
        ("exec", "svc", "true"),
        ("ps", "-a"),
        ("start", "svc"),
        ("restart", "-t", "10", "svc"),
        ("kill", "svc"),
        ("wait", "svc"),
        ("logs", "svc"),
        ("stop", "svc", "no-such"),
        ("stop", "no-such"),
        ("restart", "no-such"),
        ("wait", "no-such"),
        ("kill", "no-such"),
        ("rm", "svc"),
        ("run", "-d", "--rm", "--restart", "always", "busybox", "true"),
        ("run", "-d", "--restart", "sometimes", "busybox", "true"),
        ("run", "--restart", "always", "busybox", "true"),
        ("run", "--log-stdin", "busybox", "true"),
        ("run", "-d", "--name", "bad", "busybox", "no-such-command"),
        ("ps", "-a"),
        ("rm", "bad"),
        ("run", "-d", "--rm", "--name", "once", "busybox", "sh", "-c", "exit 5"),
    ]
    out = []
    for args in steps:
        r = cli(*args, input=b"in\n" if args[:2] == ("exec", "-i") else None)
        out.append((args, r.returncode, times(r.stdout), times(r.stderr)))
        if args[0] == "run" and "up" in " ".join(args):  # the service runs: its first line came
            wait_for(lambda: b"up" in local_cli("logs", "svc").stdout)
        if args[0] in ("start", "restart"):  # its run has begun: the next verb acts on it
            runs = 2 if args[0] == "start" else 3
            wait_for(lambda runs=runs: local_cli("logs", "svc").stdout.count(b"up") >= runs)
    wait_for(lambda: b"once" not in local_cli("ps", "-a").stdout)  # --rm: gone at its end
    return out


def test_detached_sandboxes_and_their_verbs_both_ways(daemon):
    """`run -d`, `exec`, `stop`, `start`, `restart`, `kill`, `wait`, `logs`, `rm` through the
    daemon print and exit exactly as embedded (ids and times blanked)."""
    try:
        here = lifecycle_script(local_cli)
        there = lifecycle_script(daemon.cli)
    finally:
        local_cli("rm", "-f", "svc", "bad", "once")
    for local, remote in zip(here, there):
        assert remote == local
    statuses = {" ".join(args): status for args, status, _out, _err in here}
    assert statuses["exec svc sh -c echo out; echo err >&2; exit 4"] == 4
    assert statuses["exec svc no-such-command"] == 127
    assert statuses["wait svc"] == 137  # the last wait: after the kill
    assert [s for a, s, _o, _e in here if a[:2] == ("stop", "-t")] == [0]
    assert here[8][2] == b"3\n"  # the first wait: the service's own end on SIGTERM
    assert here[2][2] == b"in\nend\n" and here[3][2] == b"1 /tmp 1:2\n"
