"""A process started in a running sandbox (``Sandbox.exec``, ``execute.exec_into``).

Checked from /proc on the host: the same namespaces as the sandbox's init
(inode by inode), its cgroup, its capabilities, no fd of ours, its own exit
status, and its end with the sandbox. Both ways it can be forked (here, and
by the zygote for a threaded process) run every test.
"""

from __future__ import annotations

import os
import re
import signal
import time

import pytest

from sandbox import CommandNotFound, Exec, Limits, SandboxSpec, StateError, capabilities_from
from sandbox.execute import exec_into
from sandbox.runtime import Sandbox

from .helpers import wait_for

pytestmark = [pytest.mark.root, pytest.mark.usefixtures("spawn_mode")]

NAMESPACES = ("mnt", "uts", "ipc", "net", "cgroup", "pid")


def sleeper(**changes) -> Sandbox:
    return Sandbox(SandboxSpec(image="busybox", command=["sleep", "1000"], **changes))


def init_pid(sb: Sandbox) -> int:
    return sb.process.pid


def ns_inode(pid: int | str, name: str) -> str:
    return os.readlink(f"/proc/{pid}/ns/{name}")


def test_an_exec_joins_every_namespace_and_the_cgroup_of_the_sandboxs_init():
    with sleeper() as sb:
        exe = sb.exec(["sh", "-c", "for n in mnt uts ipc net cgroup pid; do "
                                   "readlink /proc/self/ns/$n; done; cat /proc/self/cgroup; "
                                   "echo pid=$$ ppid=$PPID"])
        result = exe.run()
        lines = result.stdout.decode().splitlines()
        assert lines[:6] == [ns_inode(init_pid(sb), n) for n in NAMESPACES]
        assert all(ns_inode(init_pid(sb), n) != ns_inode("self", n) for n in ("mnt", "pid"))
        assert lines[6] == "0::/" or lines[6].endswith(":/")  # the sandbox's cgroup, from inside
        assert lines[-1].startswith("pid=") and lines[-1].endswith(" ppid=0")  # parent: outside


def test_the_exec_runs_in_the_sandboxs_cgroup_as_the_host_sees_it():
    with sleeper() as sb:
        exe = sb.exec(["sh", "-c", "echo $$; sleep 1000"])
        exe.start()
        try:
            host_pid = exe._monitor.command_pid
            with open(f"/proc/{host_pid}/cgroup") as mine, open(f"/proc/{init_pid(sb)}/cgroup") as its:
                assert mine.read() == its.read()
            for n in NAMESPACES:
                assert ns_inode(host_pid, n) == ns_inode(init_pid(sb), n)
        finally:
            exe.close()


def test_an_exec_has_its_own_exit_status_and_streams_and_the_sandbox_goes_on():
    with sleeper() as sb:
        result = sb.exec(["sh", "-c", "echo out; echo err >&2; exit 7"]).run()
        assert (result.exit_code, result.stdout, result.stderr) == (7, b"out\n", b"err\n")
        assert sb.exec(["true"]).run().exit_code == 0
        assert not sb.ended()


def test_an_exec_has_the_sandboxs_user_capabilities_and_environment_unless_told():
    with sleeper(user="1000:1000", env={"A": "from-run"}, workdir="/tmp") as sb:
        script = "id -u; pwd; echo $A $B; grep -E 'Cap(Bnd|Eff)|NoNewPrivs' /proc/self/status"
        own = sb.exec(["sh", "-c", script]).run().stdout.decode().split("\n")
        assert own[:3] == ["1000", "/tmp", "from-run"]
        with open(f"/proc/{init_pid(sb)}/task/{init_pid(sb)}/children") as f:
            command = f.read().split()[0]  # the sandbox's own command, sleep
        with open(f"/proc/{command}/status") as f:
            its = [line for line in f.read().split("\n")
                   if line.startswith(("CapBnd", "CapEff", "NoNewPrivs"))]
        assert sorted(own[3:6]) == sorted(its)  # the same capabilities and no_new_privs
        other = sb.exec(["sh", "-c", script], user="0", workdir="/", env={"B": "b"}).run()
        assert other.stdout.decode().split("\n")[:3] == ["0", "/", "from-run b"]


def test_no_fd_of_the_caller_reaches_the_exec():
    keep = os.open("/dev/null", os.O_RDONLY)  # an inheritable fd of ours
    os.set_inheritable(keep, True)
    try:
        with sleeper() as sb:
            result = sb.exec(["sh", "-c", "ls /proc/$$/fd; exit 0"]).run()  # the shell's fds
    finally:
        os.close(keep)
    fds = set(result.stdout.split())
    assert fds == {b"0", b"1", b"2"}, fds


def test_limits_hold_for_an_exec():
    with sleeper(limits=Limits(pids=8)) as sb:
        result = sb.exec(["sh", "-c", "for i in 1 2 3 4 5 6 7 8 9 10; do sleep 5 & done; wait"]).run()
        assert result.exit_code != 0 or b"fork" in result.stderr.lower()


def test_an_exec_dies_with_its_sandbox():
    with sleeper() as sb:
        exe = sb.exec(["sleep", "1000"])
        exe.start()
        sb.kill()
        result = exe.wait(30)
        sb.wait(30)
    assert result.exit_code == 137 and result.signal == signal.SIGKILL


def test_killing_an_exec_ends_its_command_not_the_sandbox():
    with sleeper() as sb:
        exe = sb.exec(["sleep", "1000"])
        exe.start()
        exe.kill()
        assert exe.wait(30).exit_code == 137
        time.sleep(0.1)
        assert not sb.ended()


def test_an_exec_on_a_terminal():
    with sleeper() as sb, sb.spawn(["sh"], tty_size=(33, 77)) as sh:
        sh.expect("# ")
        sh.sendline("tty; stty size; echo sid=$(cut -d' ' -f6 /proc/$$/stat) pid=$$")
        sh.expect(r"sid=(\d+) pid=(\d+)")
        assert sh.match.group(1) == sh.match.group(2)
        assert b"/dev/pts/0" in sh.before and b"33 77" in sh.before
        sh.sendline("exit 3")
        assert sh.wait(10).exit_code == 3


def test_exec_by_name_from_the_state_on_disk():
    with sleeper(name="exec-by-name") as sb:
        result = exec_into("exec-by-name", ["hostname"]).run()
        assert result.stdout == b"sandbox\n" and result.id == sb.id


def test_an_exec_into_a_sandbox_that_is_not_running_or_being_removed_is_refused():
    with pytest.raises(StateError, match="no such sandbox"):
        exec_into("no-such-sandbox", ["true"])
    sb = sleeper(name="exec-ended")
    with sb:
        sb.kill()
        sb.wait(30)
        with pytest.raises(StateError, match="is not running"):
            exec_into("exec-ended", ["true"])
    with sleeper() as sb:
        sb.dir.mark_removed()
        with pytest.raises(StateError, match="is being removed"):
            exec_into(sb.id, ["true"])
        (sb.dir.path / "removed").unlink()


def test_a_command_that_is_not_there_fails_with_127():
    with sleeper() as sb, pytest.raises(CommandNotFound) as info:
        sb.exec(["no-such-command"]).run()
    assert info.value.exit_status == 127



# -- into a sandbox with a user namespace of its own (userns="auto") ------------------------

def host_ids(pid: int) -> set[int]:
    """Every uid and gid of ``pid`` (real, effective, saved, filesystem) as the host sees them."""
    with open(f"/proc/{pid}/status") as f:
        rows = [line.split()[1:] for line in f if line.startswith(("Uid:", "Gid:"))]
    return {int(i) for row in rows for i in row}


def status_lines(text: str, *names: str) -> list[str]:
    return sorted(line for line in text.splitlines() if line.startswith(names))


def command_of(sb: Sandbox) -> int:
    """The host pid of the sandbox's own command (its init's child)."""
    with open(f"/proc/{init_pid(sb)}/task/{init_pid(sb)}/children") as f:
        return int(f.read().split()[0])


def started(sb: Sandbox, script: str, **options) -> tuple[Exec, list[bytes]]:
    """An exec of ``script`` started in ``sb``, and the list its output goes to; the
    script says END when it has said everything, then sleeps."""
    out: list[bytes] = []
    exe = sb.exec(["sh", "-c", f"{script}; echo END; exec sleep 1000"],
                  on_output=lambda record: out.append(record.data), **options)
    exe.start()
    wait_for(lambda: b"END\n" in b"".join(out))
    return exe, out


def test_an_exec_into_a_user_namespace_is_root_there_with_the_inits_maps_and_walls():
    """Its user namespace (the same maps) and every other namespace of the init, its
    cgroup, and the sandbox's command's capabilities, no_new_privs and seccomp filter;
    seen from the host, an id of the sandbox's range."""
    with sleeper(userns="auto") as sb:
        init = init_pid(sb)
        exe, out = started(sb, "id -u; id -g; readlink /proc/self/ns/user; cat /proc/self/uid_map "
                               "/proc/self/gid_map /proc/self/status")
        try:
            host_pid = exe._monitor.command_pid
            uid, gid, user_ns, uid_map, gid_map, *status = b"".join(out).decode().splitlines()
            assert (uid, gid, user_ns) == ("0", "0", ns_inode(init, "user"))
            with open(f"/proc/{init}/uid_map") as uids, open(f"/proc/{init}/gid_map") as gids:
                assert [uid_map, gid_map] == [uids.read().rstrip(), gids.read().rstrip()]
            base = int(uid_map.split()[1])
            assert base >= 1 << 31 and host_ids(host_pid) == {base}  # nobody on the host
            for n in (*NAMESPACES, "user"):
                assert ns_inode(host_pid, n) == ns_inode(init, n)
            with open(f"/proc/{host_pid}/cgroup") as mine, open(f"/proc/{init}/cgroup") as its:
                assert mine.read() == its.read()
            with open(f"/proc/{command_of(sb)}/status") as f:
                its_status = f.read()
            walls = ("CapBnd", "CapEff", "CapPrm", "NoNewPrivs", "Seccomp:")
            assert status_lines("\n".join(status), *walls) == status_lines(its_status, *walls)
            assert "Seccomp:\t2" in its_status  # the sandbox's filter, on both
        finally:
            exe.close()


def test_an_execs_files_are_the_ranges_as_its_commands_are_and_the_layer_keeps_the_images():
    """Seen by the host through the sandbox's root, a file an exec makes is owned by the
    range's first ids (by base + 1000 for user 1000), as one the sandbox's command made;
    in the writable layer itself (what a commit packs) both keep the image's own ids."""
    spec = SandboxSpec(image="busybox", userns="auto",
                       command=["sh", "-c", "echo run > /by-run; exec sleep 1000"])
    with Sandbox(spec) as sb:
        init = init_pid(sb)
        wait_for(lambda: os.path.exists(f"/proc/{init}/root/by-run"))
        assert sb.exec(["sh", "-c", "echo exec > /by-exec"]).run().exit_code == 0
        as_user = sb.exec(["sh", "-c", "id -u; grep CapEff /proc/self/status; echo u > /tmp/by-1000"],
                          user="1000").run()
        assert as_user.exit_code == 0, as_user.stderr
        assert as_user.stdout.split() == [b"1000", b"CapEff:", b"0000000000000000"]
        with open(f"/proc/{init}/uid_map") as f:
            _, base, _ = (int(n) for n in f.read().split())
        owners = {name: (st.st_uid, st.st_gid) for name in ("by-run", "by-exec", "tmp/by-1000")
                  for st in [os.stat(f"/proc/{init}/root/{name}")]}
        assert owners == {"by-run": (base, base), "by-exec": (base, base),
                          "tmp/by-1000": (base + 1000, base)}  # user 1000 has group 0 in busybox
        upper = held_upper(init)
        on_disk = {name: (st.st_uid, st.st_gid) for name in ("by-run", "by-exec")
                   for st in [os.stat(os.path.join(upper, name))]}
        assert on_disk == {"by-run": (0, 0), "by-exec": (0, 0)}


def held_upper(init: int) -> str:
    """The writable layer's upper dir of the root overlay, through the fd its init holds."""
    for name in os.listdir(f"/proc/{init}/fd"):
        path = f"/proc/{init}/fd/{name}"
        if os.path.isdir(f"{path}/upper") and os.path.isdir(f"{path}/work"):
            return f"{path}/upper"
    raise AssertionError("the init holds no writable layer")


def test_an_exec_into_a_user_namespace_gets_a_terminal_its_user_owns():
    """The pty is made as root of the host and given to the user's ids in the range: the
    user can open its own terminal by path, and `ls` shows it as theirs."""
    with sleeper(userns="auto") as sb:
        for user, prompt in (("0", "# "), ("1000", "$ ")):
            with sb.spawn(["sh"], user=user) as sh:
                sh.expect_exact(prompt)
                sh.sendline("ls -ln $(tty); echo to-its-t''ty > $(tty) && echo open''ed")
                sh.expect("opened")
                owner = re.search(rb"c[rw-]{9} +\d+ +(\d+) +(\d+) +136,", sh.before)
                assert owner is not None and owner.groups() == (user.encode(), b"0"), sh.before
                assert b"to-its-tty" in sh.before  # user 1000 has group 0 in busybox
                sh.sendline("exit 4")
                assert sh.wait(10).exit_code == 4


def test_an_exec_into_a_user_namespace_sees_no_host_process_and_holds_no_host_capability():
    """Root in the sandbox with CAP_SYS_ADMIN (added, and no seccomp filter to stop it)
    sets the hostname of its UTS namespace, which its user namespace owns, but cannot
    mount: the mount namespace is the host's user namespace's, where it holds nothing.
    Without a user namespace both work: the namespace is what stops the mount."""
    spec = dict(capabilities=capabilities_from(add=["SYS_ADMIN"]), seccomp="unconfined")
    probe = ("grep CapEff /proc/self/status; hostname escaped && echo HOSTNAME-SET; mkdir -p /tmp/m; "
             "mount -t tmpfs none /tmp/m && echo MOUNTED; echo $$; ls /proc | grep -E '^[0-9]+$'")
    with sleeper(userns="auto", **spec) as sb:
        result = sb.exec(["sh", "-c", probe]).run()
        lines = result.stdout.decode().split()
        assert int(lines[1], 16) & (1 << 21)  # CAP_SYS_ADMIN in its own user namespace
        assert b"HOSTNAME-SET" in result.stdout and b"MOUNTED" not in result.stdout
        assert result.stderr.count(b"ermission denied") + result.stderr.count(b"not permitted") >= 1
        shell, *seen = (int(n) for n in lines[3:])  # after CapEff's two and HOSTNAME-SET
        assert 1 in seen and all(pid in (1, 2) or pid >= shell for pid in seen), seen
        assert len(seen) <= 5  # its init, the sleep, the shell, ls, grep: nothing of the host's
        assert sb.exec(["hostname"]).run().stdout == b"escaped\n"  # the sandbox's own
    with sleeper(**spec) as sb:
        result = sb.exec(["sh", "-c", probe]).run()
        assert b"HOSTNAME-SET" in result.stdout and b"MOUNTED" in result.stdout, result.stderr
