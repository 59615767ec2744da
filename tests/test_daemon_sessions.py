"""`run -it`, `attach`, `exec -it` and the detach keys through the daemon, on a real terminal
(tmux): the same session as embedded (``test_interactive_cli``), the sandbox a supervisor's
on the daemon's host, so the embedded CLI there sees and acts on the same one."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time

import pytest

from .daemon_support import daemon, local_cli  # noqa: F401 - fixture
from .helpers import wait_for
from .terminal_driver import Terminal
from .test_interactive_cli import COOKED, cooked

pytestmark = pytest.mark.root


@pytest.fixture
def term(daemon):
    terminal = Terminal(rows=30, cols=100)
    yield terminal
    terminal.close()
    local_cli("rm", "-f", "it")  # whatever a failed test left running


def remote(daemon) -> str:
    return f"python3 -m sandbox --host {daemon.host}"


def test_detach_keys_leave_it_running_and_attach_through_the_daemon_comes_back(daemon, term):
    term.type(f"{remote(daemon)} run -it --name it busybox")
    term.wait_for("/ #")
    term.type("echo before > /root/mark")
    term.prompt_below(r"/ # echo before > /root/mark")
    term.send("C-p", "C-q")
    screen = term.wait_for("detached from")
    sid = re.search(r"detached from (\w{12}) \(`sandbox attach \1` to come back\)", screen)
    assert sid, screen
    term.wait_re(r"^host\$$")
    term.type("echo status=$?")
    term.wait_for("status=0")
    assert cooked(term) == COOKED
    assert re.search(rb"\w{12}\s+it\s+busybox\s+running", local_cli("ps").stdout)  # one truth
    term.clear()
    term.type(f"{remote(daemon)} attach it")
    time.sleep(1)  # the attach shows nothing until the shell writes
    term.type("cat /root/mark")
    term.wait_re(r"^before$")
    term.type("exit 7")
    term.wait_re(r"^host\$$")
    term.type("echo status=$?")
    term.wait_for("status=7")
    assert cooked(term) == COOKED
    wait_for(lambda: b" it " not in local_cli("ps", "-a").stdout)  # a foreground run: removed


def test_other_detach_keys_and_exec_it_through_the_daemon(daemon, term):
    term.type(f"{remote(daemon)} run -it --detach-keys ctrl-a,x --name it busybox")
    term.wait_for("/ #")
    term.send("C-p", "C-q")  # no longer the detach keys: they reach the shell
    term.send("C-a", "x")
    term.wait_for("detached from")
    term.clear()
    term.type(f"{remote(daemon)} exec -it it sh")
    term.wait_for("/ #")
    term.type("tty; echo cols=$(stty size | cut -d' ' -f2)")
    term.wait_re(r"^/dev/pts/\d+\ncols=100$")
    term.type("exit 5")
    term.wait_re(r"^host\$$")
    term.type("echo status=$?")
    term.wait_for("status=5")
    assert cooked(term) == COOKED
    with daemon.unix() as c:
        execs = c.get("/v1/sandboxes/it").json()["execs"]
        assert [(e["status"], e["exit_code"], e["tty"]) for e in execs] == [("exited", 5, True)]
    assert local_cli("rm", "-f", "it").returncode == 0


def test_logs_stdin_through_the_daemon_shows_what_was_typed(daemon, term):
    term.type(f"{remote(daemon)} run -it --log-stdin -d --name it busybox")
    term.wait_re(r"^[0-9a-f]{12}$")
    term.type(f"{remote(daemon)} attach it")
    time.sleep(1)  # the attach shows nothing until the shell writes
    term.type("echo typed-here")
    term.prompt_below("typed-here")
    term.send("C-p", "C-q")
    term.wait_for("detached from")
    there = daemon.cli("logs", "--stdin", "it")
    assert there.returncode == 0, there.stderr
    assert there.stdout == local_cli("logs", "--stdin", "it").stdout
    assert b"echo typed-here\r" in there.stdout
    assert b"echo typed-here\r" not in daemon.cli("logs", "it").stdout.replace(b"\r\n", b"")
    assert local_cli("rm", "-f", "it").returncode == 0


@pytest.mark.no_leak_check  # the client is killed: its guard cleans up, checked below
def test_an_attached_client_killed_with_sigkill_leaves_a_detached_sandbox_running(daemon, term):
    from tests.conftest import leaks_since, snapshot

    before = snapshot()
    made = daemon.cli("run", "-dit", "--name", "it", "busybox")
    assert made.returncode == 0, made.stderr
    term.type(f"{remote(daemon)} attach it")
    time.sleep(1)
    term.type("echo $((6 * 7))")
    term.wait_re(r"^42$")
    out = subprocess.run(["pgrep", "-f", "sandbox --host .* attach it"], capture_output=True)
    os.kill(min(int(p) for p in out.stdout.split()), signal.SIGKILL)  # not its guard
    term.wait_for("Killed")
    assert cooked(term) == COOKED  # restored by the guard
    assert re.search(rb" it +busybox +running", local_cli("ps").stdout)  # it goes on
    term.clear()
    term.type(f"{remote(daemon)} attach it")
    time.sleep(1)
    term.type("echo again-$((1 + 1))")
    term.prompt_below("again-2")
    term.send("C-p", "C-q")
    term.wait_for("detached from")
    assert local_cli("rm", "-f", "it").returncode == 0
    assert not leaks_since(before, settle=10)


def test_record_through_the_daemon_writes_the_asciicast_here(daemon, term):
    cast = os.path.join(term.dir, "session.cast")
    term.type(f"{remote(daemon)} run -it --record {cast} --name it busybox")
    term.wait_for("/ #")
    term.type("echo recorded-$((40 + 2))")
    term.wait_for("recorded-42")
    term.type("exit")
    term.wait_re(r"^host\$$")
    with open(cast) as f:
        header, *events = [json.loads(line) for line in f]
    assert header["version"] == 2 and (header["width"], header["height"]) == (100, 30)
    assert "recorded-42" in "".join(e[2] for e in events if e[1] == "o")


def test_start_a_and_restart_policies_through_the_daemon(daemon):
    """`start -a` streams the runs it starts; `--restart on-failure:2` runs a failing command
    three times; `wait` waits for the last: the same lines and statuses as embedded."""
    seen = []
    for cli in (local_cli, daemon.cli):
        made = cli("run", "-d", "--name", "it", "--restart", "on-failure:2", "busybox", "--",
                   "sh", "-c", "echo run; exit 4")
        assert made.returncode == 0, made.stderr
        waited = cli("wait", "it")
        assert local_cli("logs", "it").stdout == b"run\nrun\nrun\n"
        again = cli("start", "-a", "it")
        seen.append([(r.returncode, r.stdout, r.stderr) for r in (waited, again, cli("rm", "it"))])
    assert seen[0][:2] == seen[1][:2]
    assert seen[0][0] == (4, b"4\n", b"")
    assert seen[0][1][0] == 4 and seen[0][1][1].startswith(b"run\n")
