"""`sandbox run -it`, `attach` and `exec -it` on a real terminal (tmux).

The terminal is raw for the session and restored after whatever ends it
(the command's exit, the detach keys, SIGTERM, a SIGKILL of the client:
then the guard restores it); its size reaches the sandbox at the start and
on every resize; Ctrl-C and Ctrl-Z act inside; a session detached from goes
on and can be attached to again.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time

import pytest

from .helpers import sandbox_cli, wait_for
from .terminal_driver import Terminal

pytestmark = pytest.mark.root

SANDBOX = "python3 -m sandbox"
#: Jobs that say when they run in the foreground (and when continued, or resized).
JOB = "sh -c \"trap 'echo cont''inued' CONT; echo wait''ing; while :; do sleep 0.05; done\""
WINCH_JOB = "sh -c \"trap 'echo winch \\$(stty size)' WINCH; echo wait''ing; while :; do sleep 0.05; done\""


@pytest.fixture
def term():
    terminal = Terminal(rows=30, cols=100)
    yield terminal
    terminal.close()
    for name in ("it", "it2", "rec"):  # whatever a failed test left running
        sandbox_cli("rm", "-f", name)


#: What `stty -a` says of a terminal in its usual (cooked) mode; raw: -icanon -echo -isig.
COOKED = {"icanon", "echo", "isig"}


def cooked(term: Terminal) -> set[str]:
    """The host terminal's line settings that raw mode changes, as `stty -a` shows them."""
    term.clear()
    term.type("echo MO''DES $(stty -a | tr ' ;' '\\n\\n' | grep -E '^-?(icanon|echo|isig)$')")
    screen = term.wait_for("MODES ")
    return set(next(line for line in screen.splitlines() if line.startswith("MODES ")).split()[1:])


def client_pid() -> int:
    out = subprocess.run(["pgrep", "-f", "sandbox run -it|sandbox exec -it|sandbox attach"],
                         capture_output=True)
    pids = [int(p) for p in out.stdout.split()]
    assert pids, "no client runs"
    return min(pids)  # the client, not its terminal guard (forked after it)


def test_run_it_gives_a_shell_on_its_own_pty_sized_as_this_terminal(term):
    term.type(f"{SANDBOX} run -it --name it busybox")
    term.wait_for("/ #")
    term.type("tty; stty size; echo sid=$(cut -d' ' -f6 /proc/$$/stat) pid=$$")
    found = term.wait_re(r"^(/dev/pts/\d+)\n(\d+ \d+)\nsid=(\d+) pid=(\d+)")
    assert found.group(1) == "/dev/pts/0" and found.group(2) == "30 100"
    assert found.group(3) == found.group(4)  # the shell leads its session: job control works
    term.type(WINCH_JOB)
    term.wait_re(r"^waiting")  # written by the job: it is the foreground process group
    term.resize(40, 120)  # SIGWINCH here, TIOCSWINSZ there, SIGWINCH to the job there
    term.wait_re(r"^winch 40 120")
    term.send("C-c")
    term.type("stty size")
    term.wait_re(r"^40 120$")
    term.type("exit 3")
    term.wait_re(r"^host\$$")
    term.type("echo status=$?")
    term.wait_re(r"^status=3")
    assert cooked(term) == COOKED


def test_ctrl_c_and_ctrl_z_act_inside_the_sandbox(term):
    term.type(f"{SANDBOX} run -it --name it busybox")
    term.wait_for("/ #")
    term.type(JOB)
    term.wait_re(r"^waiting")
    term.send("C-c")  # SIGINT to the job, inside; the client is raw and does not see it
    term.type("echo after-c=$?")
    term.wait_for("after-c=130")
    term.clear()
    term.type(JOB)
    term.wait_re(r"^waiting")
    term.send("C-z")
    term.wait_for("Stopped")
    term.type("jobs")
    term.wait_re(r"^\[1\].*Stopped")
    term.type("fg")  # the foreground process group of the sandbox's terminal again
    term.wait_re(r"^continued")  # written by the job once it runs again, in the foreground
    term.send("C-c")
    term.type("jobs; echo no-jobs; exit")
    term.wait_re(r"^host\$$")
    assert cooked(term) == COOKED


def test_detach_keys_leave_it_running_and_attach_comes_back(term):
    term.type(f"{SANDBOX} run -it --name it busybox")
    term.wait_for("/ #")
    term.type("echo before > /root/mark")
    term.prompt_below(r"/ # echo before > /root/mark")
    term.send("C-p", "C-q")
    term.wait_for("detached from")
    assert cooked(term) == COOKED
    term.clear()
    term.type(f"{SANDBOX} ps")
    term.wait_re(r"^\w{12}\s+it\s+busybox\s+running")
    term.clear()
    term.type(f"{SANDBOX} attach it")
    time.sleep(1)
    term.type("cat /root/mark")
    term.wait_re(r"^before$")
    term.type("exit 7")
    term.wait_re(r"^host\$$")
    term.type("echo status=$?")
    term.wait_for("status=7")
    wait_for(lambda: b"it " not in sandbox_cli("ps", "-a").stdout)  # a foreground run: removed


def test_other_detach_keys(term):
    term.type(f"{SANDBOX} run -it --detach-keys ctrl-a,x --name it busybox")
    term.wait_for("/ #")
    term.send("C-p", "C-q")  # no longer the detach keys: they reach the shell
    term.send("C-a", "x")
    term.wait_for("detached from")
    assert sandbox_cli("rm", "-f", "it").returncode == 0


@pytest.mark.no_leak_check  # the client is killed: its guard and the supervisor clean up
def test_a_client_killed_with_sigkill_leaves_the_terminal_restored_and_the_sandbox_ends(term):
    from tests.conftest import leaks_since, snapshot

    before = snapshot()
    term.type(f"{SANDBOX} run -it --name it busybox")
    term.wait_for("/ #")
    os.kill(client_pid(), signal.SIGKILL)
    term.wait_for("Killed")
    assert cooked(term) == COOKED  # restored by the guard
    wait_for(lambda: b" it " not in sandbox_cli("ps", "-a").stdout)  # hung up, then removed
    assert not leaks_since(before, settle=10)


@pytest.mark.no_leak_check  # the client is killed: its guard cleans up, checked below
def test_an_attached_client_killed_with_sigkill_leaves_a_detached_sandbox_running(term):
    from tests.conftest import leaks_since, snapshot

    before = snapshot()
    assert sandbox_cli("run", "-dit", "--name", "it", "busybox").returncode == 0
    term.type(f"{SANDBOX} attach it")
    time.sleep(1)  # the attach shows nothing until the shell writes
    term.type("echo $((6 * 7))")
    term.wait_re(r"^42$")
    os.kill(client_pid(), signal.SIGKILL)
    term.wait_for("Killed")
    assert cooked(term) == COOKED  # restored by the guard
    assert re.search(rb" it +busybox +running", sandbox_cli("ps").stdout)  # it goes on
    term.clear()
    term.type(f"{SANDBOX} attach it")
    time.sleep(1)
    term.type("echo again-$((1 + 1))")
    term.prompt_below("again-2")
    term.send("C-p", "C-q")
    term.wait_for("detached from")
    assert sandbox_cli("rm", "-f", "it").returncode == 0
    assert not leaks_since(before, settle=10)


def test_a_client_ended_with_sigterm_restores_the_terminal_itself(term):
    term.type(f"{SANDBOX} run -it --name it busybox")
    term.wait_for("/ #")
    os.kill(client_pid(), signal.SIGTERM)
    term.wait_for("got SIGTERM: the session ends")
    term.wait_re(r"^host\$$")
    term.type("echo status=$?")
    term.wait_for("status=143")
    assert cooked(term) == COOKED


def test_exec_it_into_a_detached_sandbox(term):
    assert sandbox_cli("run", "-d", "--name", "it", "busybox", "--", "sleep", "1000").returncode == 0
    term.type(f"{SANDBOX} exec -it it sh")
    term.wait_for("/ #")
    term.type("tty; ps -o pid,comm | grep -c sleep")
    found = term.wait_re(r"^/dev/pts/0\n(\d+)$")
    assert found.group(1) == "1"  # the sandbox's own sleep, seen inside
    term.type("exit 5")
    term.wait_re(r"^host\$$")
    term.type("echo status=$?")
    term.wait_for("status=5")
    assert sandbox_cli("rm", "-f", "it").returncode == 0


def test_exec_it_into_a_sandbox_with_a_user_namespace_of_its_own(term):
    """Root there, with its init's maps, on a pty of the sandbox's devpts that it owns."""
    started = sandbox_cli("run", "-d", "--userns", "auto", "--name", "it", "busybox", "--",
                          "sleep", "1000")
    assert started.returncode == 0, started.stderr
    term.type(f"{SANDBOX} exec -it it sh")
    term.wait_for("/ #")
    term.type("tty; id -u; echo map $(cat /proc/self/uid_map) is $(cat /proc/1/uid_map); "
              "ls -ln $(tty) | cut -c 1-30")
    found = term.wait_re(r"^/dev/pts/0\n0\nmap 0 (\d+) 65536 is 0 (\d+) 65536\nc[rw-]{9} +1 0 +0$")
    assert found.group(1) == found.group(2) and int(found.group(1)) >= 1 << 31
    term.type("exit 6")
    term.wait_re(r"^host\$$")
    term.type("echo status=$?")
    term.wait_for("status=6")
    assert sandbox_cli("rm", "-f", "it").returncode == 0


def test_record_writes_an_asciicast_v2_file(term):
    cast = os.path.join(term.dir, "session.cast")
    term.type(f"{SANDBOX} run -it --record {cast} --name rec busybox")
    term.wait_for("/ #")
    term.type("echo recorded-$((40 + 2))")
    term.wait_for("recorded-42")
    term.type("exit")
    term.wait_re(r"^host\$$")
    with open(cast) as f:
        header, *events = [json.loads(line) for line in f]
    assert header["version"] == 2 and (header["width"], header["height"]) == (100, 30)
    assert all(e[1] in ("o", "r") for e in events)  # no input: keys can be secrets
    assert "recorded-42" in "".join(e[2] for e in events if e[1] == "o")
    times = [e[0] for e in events]
    assert times == sorted(times)


def test_log_stdin_keeps_what_was_typed(term):
    term.type(f"{SANDBOX} run -it --log-stdin -d --name it busybox")
    term.wait_re(r"^[0-9a-f]{12}$")
    term.type(f"{SANDBOX} attach it")
    time.sleep(1)
    term.type("echo typed-here")
    term.prompt_below("typed-here")
    term.send("C-p", "C-q")
    term.wait_for("detached from")
    logs = sandbox_cli("logs", "--stdin", "it").stdout
    assert b"echo typed-here\r" in logs
    assert b"echo typed-here\r" not in sandbox_cli("logs", "it").stdout.replace(b"\r\n", b"")


def test_tty_without_a_terminal_says_so():
    out = sandbox_cli("run", "-it", "busybox", input=b"")
    assert out.returncode == 125
    assert out.stderr == b"sandbox: error: the input device is not a TTY\n"
    out = sandbox_cli("exec", "-it", "nothing-here", "sh", input=b"")
    assert out.returncode == 125 and b"not a TTY" in out.stderr
