"""`sandbox run -d`, `ps -a`, `exec`, `logs`, `stop`, `start`, `restart`, `kill`, `wait`, `rm`.

As a user types them (python -m sandbox); the engine's side is in
test_supervisor.py and test_exec.py, the terminals' in test_interactive_cli.py.
"""

from __future__ import annotations

import os
import re
import time
from datetime import UTC, datetime

import pytest

from .helpers import sandbox_cli, wait_for

root = pytest.mark.root

LOOP = "echo started; while :; do echo tick; sleep 0.2; done"


@pytest.fixture
def names():
    """Names to remove whatever happens (then the leak check sees nothing)."""
    made: list[str] = []
    yield made
    for name in made:
        sandbox_cli("rm", "-f", name)


def ok(*args: str, input: bytes | None = None) -> str:
    out = sandbox_cli(*args, input=input)
    assert out.returncode == 0, out.stderr.decode()
    return out.stdout.decode()


def ps_line(name: str, *flags: str) -> str | None:
    for line in ok("ps", *flags).splitlines()[1:]:
        if line.split()[1] == name:
            return line
    return None


@root
def test_a_detached_sandbox_from_run_to_rm(names):
    names.append("web")
    sandbox_id = ok("run", "-d", "--name", "web", "busybox", "--", "sh", "-c", LOOP).strip()
    assert re.fullmatch(r"[0-9a-f]{12}", sandbox_id)
    assert "running" in ps_line("web")
    assert ok("exec", "web", "sh", "-c", "echo $HOSTNAME; echo kept > /root/f") == "sandbox\n"
    wait_for(lambda: "tick" in ok("logs", "web"))
    assert ok("stop", "-t", "1", "web") == "web\n"
    assert ps_line("web") is None and "exited (143)" in ps_line("web", "-a")
    assert "started" in ok("logs", "web")  # kept, with its log
    assert ok("start", "web") == "web\n"
    assert ok("exec", "web", "cat", "/root/f") == "kept\n"  # the same writable layer
    out = sandbox_cli("rm", "web")
    assert out.returncode == 125 and b"is running" in out.stderr and b"rm -f" in out.stderr
    assert ok("rm", "-f", "web") == f"{sandbox_id}\n"
    assert ps_line("web", "-a") is None


@root
def test_restart_kill_and_wait(names):
    names.append("svc")
    ok("run", "-d", "--name", "svc", "--restart", "on-failure:1", "busybox", "--",
       "sh", "-c", "trap 'exit 3' TERM; echo up; while :; do sleep 0.05; done")
    ok("restart", "-t", "5", "svc")
    wait_for(lambda: ok("logs", "svc").count("up") == 2)
    ok("kill", "-s", "TERM", "svc")  # exit 3: a failure, restarted once
    wait_for(lambda: ok("logs", "svc").count("up") == 3)
    ok("kill", "svc")  # SIGKILL: stopped on purpose, no restart
    out = sandbox_cli("wait", "svc")
    assert (out.returncode, out.stdout) == (137, b"137\n")


@root
def test_rm_flag_removes_a_detached_sandbox_at_its_end(names):
    names.append("once")
    ok("run", "-d", "--rm", "--name", "once", "busybox", "--", "true")
    wait_for(lambda: ps_line("once", "-a") is None)


@root
def test_logs_since_and_timestamps(names):
    names.append("stamped")
    ok("run", "-d", "--name", "stamped", "busybox", "--", "sh", "-c", "echo one; sleep 1.2; echo two")
    wait_for(lambda: "two" in ok("logs", "stamped"))
    stamped = ok("logs", "--timestamps", "stamped").splitlines()
    assert all(re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z (one|two)$", line)
               for line in stamped)
    assert [line.split()[1] for line in stamped] == ["one", "two"]
    two_at = datetime.strptime(stamped[1].split()[0], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    # epoch seconds: from the second line's own time on (not "1s" ago: a loaded machine
    # can take longer than that between the line and this command)
    assert ok("logs", "--since", f"{two_at.timestamp():.6f}", "stamped") == "two\n"
    assert ok("logs", "--since", "1h", "stamped") == "one\ntwo\n"  # a duration ago
    assert ok("logs", "--since", str(time.time() + 60), "stamped") == ""


@root
def test_logs_follow_ends_when_the_sandbox_stops(names):
    names.append("follow")
    ok("run", "-d", "--name", "follow", "busybox", "--", "sh", "-c", "echo a; sleep 1; echo b")
    out = sandbox_cli("logs", "-f", "follow", timeout=30)
    assert out.returncode == 0 and out.stdout == b"a\nb\n"


@root
def test_exec_with_user_workdir_env_and_its_own_status(names):
    names.append("ex")
    ok("run", "-d", "--name", "ex", "-e", "A=run", "busybox", "--", "sleep", "1000")
    out = sandbox_cli("exec", "-u", "65534", "-w", "/tmp", "-e", "B=exec", "ex",
                      "sh", "-c", "id -u; pwd; echo $A $B; exit 9")
    assert (out.returncode, out.stdout) == (9, b"65534\n/tmp\nrun exec\n")
    assert ok("exec", "-i", "ex", "wc", "-c", input=b"12345") == "5\n"
    plan = ok("exec", "--dry-run", "ex", "true")
    assert "setns(pidfd, mnt uts ipc net cgroup pid)" in plan and "become non-dumpable" in plan


@root
def test_bad_input_gets_one_line_and_125(names):
    names.append("bad")
    ok("run", "-d", "--name", "bad", "busybox", "--", "sleep", "1000")
    cases = [
        (("exec", "no-such", "true"), b"no such sandbox"),
        (("exec", "bad"), b"exec needs a command"),
        (("run", "--restart", "sometimes", "-d", "busybox"), b"invalid restart policy"),
        (("run", "--restart", "always", "busybox"), b"--restart needs -d"),
        (("run", "--rm", "busybox", "--", "true"), b"--rm needs -d or -t"),
        (("run", "-d", "--rm", "--restart", "always", "busybox"), b"no with --rm"),
        (("run", "-t", "-d", "--detach-keys", "ctrl-1", "busybox"), b"invalid detach keys"),
        (("kill", "-s", "NOPE", "bad"), b"invalid signal"),
        (("attach", "no-such"), b"no such sandbox"),
        (("start", "bad"), b"running already"),
        (("run", "--idle-timeout", "soon", "busybox"), b"invalid idle timeout"),
        (("logs", "--since", "yesterday", "bad"), b"invalid since"),
    ]
    for args, message in cases:
        out = sandbox_cli(*args)
        assert out.returncode == 125, (args, out.stderr)
        assert message in out.stderr and out.stderr.count(b"\n") == 1, (args, out.stderr)


@root
def test_exec_into_a_stopped_sandbox_and_one_being_removed(names):
    names.append("gone")
    ok("run", "-d", "--name", "gone", "busybox", "--", "true")
    wait_for(lambda: "exited" in (ps_line("gone", "-a") or ""))
    out = sandbox_cli("exec", "gone", "true")
    assert out.returncode == 125 and b"is not running" in out.stderr
    assert b"sandbox start gone" in out.stderr


@root
def test_a_foreground_run_can_be_stopped_and_killed_from_another_process():
    from .helpers import popen_cli

    proc = popen_cli("run", "--name", "fg", "busybox", "--", "sh", "-c",
                     "trap 'echo term; exit 4' TERM; echo ready; while :; do sleep 0.05; done")
    try:
        assert proc.stdout.readline() == b"ready\n"
        out = sandbox_cli("wait", "fg")
        assert out.returncode == 125 and b"foreground" in out.stderr
        assert ok("stop", "fg") == "fg\n"
        assert proc.wait(30) == 4
    finally:
        proc.kill()
        proc.wait()


@root
def test_run_it_dry_run_shows_the_terminal_step():
    plan = ok("run", "-it", "--dry-run", "busybox")
    assert "open a pty in /dev/pts" in plan and "exec sh as 0:0 in /" in plan


@root
@pytest.mark.skipif(not os.path.exists("/bin/sh"), reason="needs /bin/sh")
def test_a_tty_sandbox_without_a_command_runs_a_shell(names):
    from sandbox import images

    assert images.get("busybox").config.cmd  # busybox has one: sh; without, /bin/sh
    plan = ok("run", "-t", "--dry-run", "busybox")
    assert "exec sh" in plan
