"""Exit statuses, signals, zombies, and setup errors with Docker's statuses."""

import os
import signal

import pytest

from sandbox import CommandNotExecutable, CommandNotFound, Mount, SandboxSpec, SetupError, run

pytestmark = [pytest.mark.root, pytest.mark.usefixtures("spawn_mode")]


def sh(script, **kw):
    return run(SandboxSpec(image="busybox", command=["sh", "-c", script], **kw))


@pytest.mark.parametrize("code", [0, 1, 3, 42, 255])
def test_exit_codes(code):
    r = sh(f"exit {code}")
    assert r.exit_code == code and r.signal is None and r.cause == "exited"


def test_death_by_signal_is_128_plus_n():
    r = sh("kill -TERM $$")
    assert r.signal == signal.SIGTERM and r.exit_code == 128 + signal.SIGTERM
    assert r.cause == "signaled" and r.signal_name == "SIGTERM"


def test_init_reaps_orphaned_zombies():
    r = sh("for i in 1 2 3 4 5; do (sleep 0.01 &) ; done; sleep 0.3; ps -o stat,comm | grep -c '^Z' || true")
    assert r.stdout.strip() == b"0"


def test_init_forwards_sigterm_to_the_command():
    from sandbox import Sandbox

    with Sandbox(SandboxSpec(image="busybox", command=["sh", "-c", "trap 'echo got TERM; exit 7' TERM; "
                                                        "echo ready; while :; do sleep 0.05; done"])) as sb:
        while b"ready" not in sb.stdout:
            sb._monitor.done.wait(0.01)
        sb.kill(signal.SIGTERM)
        r = sb.wait()
    assert r.exit_code == 7 and b"got TERM" in r.stdout


def test_command_not_found_is_127():
    with pytest.raises(CommandNotFound) as info:
        run(SandboxSpec(image="busybox", command=["no-such-command"]))
    assert info.value.exit_status == 127 and "no-such-command" in str(info.value)


def test_not_executable_is_126(tmp_path):
    script = tmp_path / "script"
    script.write_text("#!/bin/sh\necho hi\n")
    script.chmod(0o644)
    with pytest.raises(CommandNotExecutable) as info:
        run(SandboxSpec(image="busybox", command=["/x/script"], mounts=[Mount(str(tmp_path), "/x")]))
    assert info.value.exit_status == 126


def test_bad_workdir_names_the_step(tmp_path):
    with pytest.raises(SetupError) as info:
        run(SandboxSpec(image="busybox", command=["true"], workdir="/etc/passwd"))
    assert info.value.exit_status == 125 and "workdir /etc/passwd" in str(info.value)


def test_unknown_user_names_the_step():
    with pytest.raises(SetupError, match="user nosuchuser"):
        run(SandboxSpec(image="busybox", command=["true"], user="nosuchuser"))


def test_bad_mount_target_names_the_step(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(SetupError, match="bind mount"):
        run(SandboxSpec(image="busybox", command=["true"],
                        mounts=[Mount(str(tmp_path), "/etc/passwd/sub")]))


def test_setup_errors_leave_nothing_and_do_not_poison_the_next_run():
    for _ in range(3):
        with pytest.raises(CommandNotFound):
            run(SandboxSpec(image="busybox", command=["nope"]))
    assert sh("echo fine").stdout == b"fine\n"
    assert os.path.isdir(os.environ["SANDBOX_RUN_DIR"])
