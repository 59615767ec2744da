"""A command on a terminal made inside its sandbox (``SandboxSpec(tty=True)``), from the API.

Driven as pexpect drives a program (``sandbox.runtime.spawn`` returns a
Spawned): the pty is the sandbox's own (its devpts), the command's
controlling terminal, sized at start and on resize; Ctrl-C, Ctrl-Z and
job control act inside; the limits hold (output, wall time, idle time).
The CLI's side (raw mode on a real terminal, detach, attach) is in
test_interactive_cli.py.
"""

from __future__ import annotations

import fcntl
import os
import time

import pytest

from sandbox import CommandNotFound, Limits, SandboxSpec, SpecError, dry_run
from sandbox.runtime import Sandbox, spawn

pytestmark = [pytest.mark.root, pytest.mark.usefixtures("spawn_mode")]

PROMPT = "# "
#: A job that says when it runs in the foreground, and when it is continued.
JOB = "sh -c \"trap 'echo cont''inued' CONT; echo wait''ing; while :; do sleep 0.05; done\""


def shell(**changes):
    return spawn(SandboxSpec(image="busybox", command=["sh"], **changes),
                 tty_size=changes.pop("tty_size", (24, 80)))


def own_fds() -> set[str]:
    fds = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            fds.add(f"{fd} {os.readlink(f'/proc/self/fd/{fd}')}")
        except OSError:
            continue  # the listing's own fd
    return fds


def test_the_shell_gets_its_own_pty_as_controlling_terminal_and_is_a_session_leader():
    with shell() as sh:  # what a process opens once (its pid namespace's fd, a zygote)
        sh.expect(PROMPT)
    before = own_fds()
    with shell() as sh:
        sh.expect(PROMPT)
        sh.sendline("tty; ls /dev/pts; echo sid=$(cut -d' ' -f6 /proc/$$/stat) pid=$$")
        sh.expect(r"sid=(\d+) pid=(\d+)")
        assert sh.match.group(1) == sh.match.group(2)  # the shell leads its session
        assert b"/dev/pts/0" in sh.before  # the sandbox's own devpts: its first pty
        assert sh.before.split(b"\r\n")[2].split() == [b"0", b"ptmx"]
        sh.sendline("exec 3</dev/tty && echo tty-ok")  # /dev/tty: its controlling terminal
        sh.expect("tty-ok")
        assert fcntl.fcntl(sh.proc.input.fd, fcntl.F_GETFD) & fcntl.FD_CLOEXEC  # master: cloexec
        sh.sendcontrol("d")  # end of input on the terminal: the shell exits
        assert sh.wait(10).exit_code == 0
    assert own_fds() == before  # no master, no console socket left here


def test_window_size_at_start_and_on_resize():
    with spawn(SandboxSpec(image="busybox", command=["sh"]), tty_size=(30, 91)) as sh:
        sh.expect(PROMPT)
        sh.sendline("stty size")
        sh.expect("30 91")
        sh.sendline("sh -c \"trap 'echo winch \\$(stty size); exit' WINCH; echo waiting; "
                    "while :; do sleep 0.05; done\"")
        sh.expect("\r\nwaiting")
        sh.resize(40, 120)
        sh.expect("winch 40 120")  # SIGWINCH reached the foreground process group


def test_ctrl_c_interrupts_the_foreground_job_and_the_shell_goes_on():
    with shell() as sh:
        sh.expect(PROMPT)
        sh.sendline(JOB)
        sh.expect("\r\nwaiting")  # written by the job: it is the foreground process group
        sh.sendcontrol("c")  # SIGINT from the line discipline, inside, to the foreground job
        sh.expect_exact(PROMPT)
        sh.sendline("echo status-$?")
        sh.expect("status-130")


def test_ctrl_z_stops_a_job_and_job_control_brings_it_back():
    with shell() as sh:
        sh.expect(PROMPT)
        sh.sendline(JOB)
        sh.expect("\r\nwaiting")
        sh.sendcontrol("z")
        sh.expect("Stopped")
        sh.sendline("jobs")
        sh.expect(r"\[1\][^\r]*Stopped[^\r]*sleep 0.05")
        sh.sendline("fg")  # back in the foreground: the terminal's process group again
        sh.expect("\r\ncontinued")  # written by the job once it runs again, in the foreground
        sh.sendcontrol("c")
        sh.expect_exact(PROMPT)
        sh.sendline("jobs; exit 4")
        assert sh.wait(10).exit_code == 4


def test_a_terminal_that_floods_keeps_to_the_output_limit(monkeypatch):
    # past the limit the monitor drains DRAIN_ALLOWANCE more before it kills: 64 MiB through
    # a pty took 25 s and more on a loaded machine; 1 MiB takes the same path
    monkeypatch.setattr("sandbox.logs.DRAIN_ALLOWANCE", 1 << 20)
    with shell(limits=Limits(output="64k")) as sh:
        sh.expect(PROMPT)
        sh.sendline("yes flood")
        result = sh.wait(60)
    assert result.output_truncated and result.output_killed and result.exit_code == 137
    assert len(result.stdout) == 64 << 10


def test_an_idle_session_is_ended_by_the_idle_timeout():
    with shell(limits=Limits(idle_timeout="0.5s")) as sh:
        sh.expect(PROMPT)
        for _ in range(4):  # input keeps it alive
            time.sleep(0.2)
            sh.send(" ")
        result = sh.wait(30)
    assert result.idle_timed_out and result.cause == "idle_timeout" and result.exit_code == 137
    assert result.duration >= 0.5 and "idle for 500ms" in result.limit_message()


def test_the_wall_time_limit_ends_a_session_too():
    with shell(limits=Limits(timeout="0.5s")) as sh:
        sh.expect(PROMPT)
        result = sh.wait(30)
    assert result.timed_out and result.exit_code == 137


def test_a_command_that_is_not_there_fails_as_without_a_terminal():
    with pytest.raises(CommandNotFound):
        spawn(SandboxSpec(image="busybox", command=["no-such-command"]))


def test_a_non_terminal_sandbox_takes_live_input_on_a_pipe():
    spec = SandboxSpec(image="busybox", command=["sh", "-c", "tr a-z A-Z; echo end"],
                       interactive=True)
    with Sandbox(spec) as sb:
        sb.write_stdin(b"hello\n")
        sb.close_stdin()
        result = sb.wait(10)
    assert result.stdout == b"HELLO\nend\n"


def test_the_plan_says_where_the_terminal_is_made():
    text = dry_run(SandboxSpec(image="busybox", command=["sh"], tty=True), (50, 132)).describe()
    lines = text.splitlines()
    assert "open a pty in /dev/pts (50x132), send its master on the console socket" in lines
    assert lines.index("pivot_root") < lines.index(
        "open a pty in /dev/pts (50x132), send its master on the console socket")


def test_bad_terminal_requests_are_refused_with_what_is_accepted():
    with pytest.raises(SpecError, match="terminal size"):
        Sandbox(SandboxSpec(image="busybox", tty=True), tty_size=(0, 80))
    with pytest.raises(SpecError, match="no stdin data with tty"):
        SandboxSpec(image="busybox", tty=True, stdin=b"x")
    with pytest.raises(SpecError, match="a Python target runs without a terminal"):
        Sandbox(SandboxSpec(image="busybox", tty=True), target=lambda: 0)
