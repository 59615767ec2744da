"""Every way into a container, step by step, against a recording Kernel (no root).

Each start route's processes run here, in the test process, with a
RecordingKernel in place of the kernel: the test reads the whole order of
what the container's processes would do, the init's steps included, and
checks the order that matters for safety (no host fd left before anything
else, the cgroup joined before the namespaces, capabilities dropped before
the user changes, no_new_privs before exec, the command only after the
owner's "go", a user namespace made before the overlays and entered before
the user changes, the seccomp filter loaded last before exec).
"""

from __future__ import annotations

import os
import pickle
import signal

import pytest

from sandbox import SandboxSpec, StateError, linux
from sandbox.images import Image
from sandbox.plan import UserNamespace
from sandbox.planner import build_plan
from sandbox.process import init, spare, steps
from sandbox.process.fds import ChildFds
from sandbox.process.forkserver import _fork_one
from sandbox.process.handshake import HELD, SETUP_FAILED
from sandbox.process.launch_direct import DirectLauncher
from sandbox.process.launch_held import HeldLauncher
from sandbox.process.target import enter_held

from .kernel_recorder import Exited, RecordingKernel

IMAGE = Image("test", ("/images/test/rootfs",))
FDS = ChildFds(10, 11, 12, 13)
PARENT = (os.getpid(), None)
#: A process's own fds put on 0-3, every other one closed (fds.arrange); keeping two.
ARRANGE = ["dup"] * 4 + ["dup2"] * 4 + ["close_range"]
ARRANGE_KEEPING_2 = ["dup"] * 4 + ["dup2"] * 4 + ["close_range"] * 3
#: /dev/null on 0-2 (fds.null_stdio).
NULL_STDIO = ["open", "dup2", "dup2", "dup2", "close"]
FORWARDED = ["set_signal"] * len(init.FORWARDED)
#: become(): rlimits, capabilities, the user, no_new_privs, the workdir (a non-root user).
CREDENTIALS = ["set_rlimit", "drop_bounding_caps", "clear_ambient_caps", "set_ids", "set_caps",
               "set_no_new_privs", "chdir"]
#: After becoming the user: PR_SET_PDEATHSIG again (a credential change clears it), owner checked.
REARM = ["set_pdeathsig", "reader_gone"]
USERNS = UserNamespace(2147483648, 2147483648, 65536)


def make_plan(**changes):
    spec = SandboxSpec(image="test", command=["sh", "-c", "true"], workdir="/work",
                       user="1000:1000", **changes)
    userns = USERNS if spec.userns == "auto" else None
    return build_plan(spec, IMAGE, "abc", "/run/sb/abc", None, ids=(1000, 1000, (1000,), "/"),
                      userns=userns)


def names_of(ops) -> list[str]:
    """The Kernel calls ``steps.run(ops)`` makes, by name."""
    kernel = RecordingKernel()
    steps.run(ops, kernel)
    return kernel.names()


def run_until_exit(kernel: RecordingKernel, main, *args) -> int:
    """Run a process's main function to its ``exit``; the exit status."""
    with pytest.raises(Exited):
        main(*args)
    assert kernel.exited is not None
    return kernel.exited


def test_a_fresh_init_sets_up_runs_and_reports_in_this_order():
    """Direct route, and the zygote's fresh forks: one process does everything."""
    plan = make_plan()
    kernel = RecordingKernel()
    assert run_until_exit(kernel, init.fresh_main, plan, FDS, PARENT, kernel) == 0
    assert kernel.names() == [
        *ARRANGE, "set_pdeathsig", "setsid", "join_cgroup", "unshare",
        *names_of(plan.ops), *names_of(plan.hooks), "close_host_netlink", "set_name",
        "set_cmdline", *FORWARDED, *CREDENTIALS, "set_dumpable", *REARM, "load_seccomp", "spawn", "write",
        *NULL_STDIO, "wait_any", "write", "exit"]
    calls = kernel.calls
    assert ("unshare", plan.unshare_flags) in calls and ("set_name", "sandbox-init") in calls
    assert ("set_cmdline", "sandbox-init") in calls  # no host path shows in /proc/1/cmdline
    assert ("set_dumpable", False) in calls and calls[-1] == ("exit", 0)
    assert kernel.calls[-2] == ("write", 3, b'{"event": "exit", "status": 0}\n')


def test_a_setup_failure_is_reported_by_step_and_nothing_runs():
    kernel = RecordingKernel(fail_on="pivot_root")
    assert run_until_exit(kernel, init.fresh_main, make_plan(), FDS, PARENT, kernel) == SETUP_FAILED
    assert "spawn" not in kernel.names() and "set_name" not in kernel.names()
    name, fd, message = kernel.calls[-2]
    assert (name, fd) == ("write", 3) and b'"step": "pivot_root"' in message


def test_a_spare_does_ahead_what_needs_no_plan_and_runs_the_command_only_after_go():
    flags = spare.spare_flags(make_plan().unshare_flags)
    plan = make_plan()
    kernel = RecordingKernel(replies={"recv_fds": [(pickle.dumps(plan), list(FDS))],
                                      "read": [spare.GO]})
    assert run_until_exit(kernel, spare.spare_main, 5, flags, PARENT, None, kernel) == 0
    names = kernel.names()
    ahead = names[:names.index("recv_fds")]
    assert ahead == ["dup_above", *NULL_STDIO, "close_range", "close_range", "set_pdeathsig",
                     "setsid", "set_name", *FORWARDED, "open_host_netlink", "unshare", "mount",
                     "loopback_up"]
    assert ("unshare", flags) in kernel.calls and ("set_name", "sandbox-spare") in kernel.calls
    assert "join_cgroup" not in names  # the owner joins it, and says "go"
    after = names[names.index("recv_fds") + 1:]
    go = after.index("read")
    assert after[:go] == [*ARRANGE_KEEPING_2, *names_of(plan.ops)]
    hooks = [n for n in names_of(plan.hooks) if n != "loopback_up"]  # lo is up already
    assert after[go:] == ["read", "close", "unshare", *hooks, "close_host_netlink", "set_name",
                          "set_cmdline", *CREDENTIALS, "set_dumpable", *REARM, "load_seccomp", "spawn", "write",
                          *NULL_STDIO, "wait_any", "write", "exit"]
    assert ("unshare", linux.CLONE_NEWCGROUP) in kernel.calls


def test_spares_made_for_user_namespaces_and_for_none_serve_each_other_s_plans():
    """A user namespace's plan with NET_ADMIN and SYS_ADMIN does not unshare the network
    and UTS namespaces first (its user namespace makes them), and the zygote makes the
    next spare like it: a plan without a user namespace then takes that spare and
    unshares them before its steps; a user namespace's plan takes a spare made for one
    without and leaves them behind. No spare with a network namespace of its own serves
    a plan on the host's."""
    userns = make_plan(userns="auto", capabilities=("NET_ADMIN", "SYS_ADMIN"))
    plain = make_plan(capabilities=("NET_ADMIN", "SYS_ADMIN"))
    lean, full = spare.spare_flags(userns.unshared_first), spare.spare_flags(plain.unshare_flags)
    owned = linux.CLONE_NEWNET | linux.CLONE_NEWUTS
    assert full == lean | owned
    assert spare.fits(userns, lean) and spare.fits(userns, full) and spare.fits(plain, full)
    assert spare.fits(plain, lean) and spare.late(plain, lean) == owned and spare.late(userns, full) == 0
    on_host = make_plan(network="host")
    assert not spare.fits(on_host, full) and spare.fits(on_host, lean)
    assert spare.late(on_host, lean) == linux.CLONE_NEWUTS

    kernel = RecordingKernel(replies={"recv_fds": [(pickle.dumps(plain), list(FDS))],
                                      "read": [spare.GO]})
    assert run_until_exit(kernel, spare.spare_main, 5, lean, PARENT, None, kernel) == 0
    names = kernel.names()
    assert ("unshare", lean) in kernel.calls and "loopback_up" not in names[:names.index("recv_fds")]
    after = names[names.index("recv_fds") + 1:]
    assert after[:len(ARRANGE_KEEPING_2) + 1] == [*ARRANGE_KEEPING_2, "unshare"]
    assert kernel.calls[names.index("recv_fds") + 1 + len(ARRANGE_KEEPING_2)] == ("unshare", owned)
    assert "loopback_up" in after  # the plan's own step: no spare brought this lo up


def test_a_spare_the_owner_could_not_join_fails_at_join_cgroup():
    plan = make_plan()
    error = pickle.dumps((13, "Permission denied", "/sys/fs/cgroup/x/cgroup.procs"))
    kernel = RecordingKernel(replies={"recv_fds": [(pickle.dumps(plan), list(FDS))],
                                      "read": [error]})
    flags = spare.spare_flags(plan.unshare_flags)
    assert run_until_exit(kernel, spare.spare_main, 5, flags, PARENT, None, kernel) == SETUP_FAILED
    assert "spawn" not in kernel.names()
    assert b'"step": "join cgroup"' in kernel.calls[-2][2]


def test_a_held_init_makes_the_container_says_held_and_starts_nothing():
    plan = make_plan()._replace(hold=True)
    kernel = RecordingKernel(replies={"recv_fds": [(pickle.dumps(plan), list(FDS))],
                                      "read": [spare.GO, b""]})
    flags = spare.spare_flags(plan.unshare_flags)
    assert run_until_exit(kernel, spare.spare_main, 5, flags, PARENT, None, kernel) == 0
    names = kernel.names()
    tail = names[names.index("set_name", names.index("recv_fds")):]
    assert tail == ["set_name", "set_cmdline", *NULL_STDIO, "set_signal", "write", "read", "exit"]
    assert kernel.calls[-4][:2] == ("set_signal", signal.SIGCHLD)
    assert kernel.calls[-3] == ("write", 100, HELD) and "spawn" not in names  # its socket, moved


def test_a_target_forked_into_a_held_container_enters_it_then_becomes_its_user():
    plan = make_plan()
    kernel = RecordingKernel(replies={"read": [HELD]})
    assert run_until_exit(kernel, enter_held, plan, FDS, lambda: 5, 21, 22, kernel) == 5
    assert kernel.names() == [
        "dup_above", "dup_above", *ARRANGE[:-1], "close_range", "close_range", "close_range",
        "setsid", "join_cgroup", "read", "setns", "close_range", "reset_signals", *CREDENTIALS,
        "set_environ", "load_seccomp", "write", "close", "exit"]
    assert ("setns", 100, plan.unshare_flags) in kernel.calls  # the init's pidfd, moved above 3


def test_a_target_whose_init_failed_ends_without_running():
    kernel = RecordingKernel(replies={"read": [b""]})
    ran = []
    status = run_until_exit(kernel, enter_held, make_plan(), FDS, lambda: ran.append(1), 21, 22,
                            kernel)
    assert status == SETUP_FAILED and not ran and "setns" not in kernel.names()


def test_the_first_target_is_forked_by_its_init_once_the_container_is_ready():
    plan = make_plan()
    kernel = RecordingKernel(replies={"fork": [0]})  # follow the child of the init's fork
    assert run_until_exit(kernel, init.fresh_main, plan, FDS, PARENT, kernel, lambda: 4) == 4
    names = kernel.names()
    assert names[names.index("set_name"):] == [
        "set_name", "set_cmdline", *FORWARDED, "pipe", "fork", "close", "reset_signals", *CREDENTIALS,
        "set_environ", "load_seccomp", "close", "exit"]

    parent = RecordingKernel()  # the init's side of the same fork
    assert run_until_exit(parent, init.fresh_main, plan, FDS, PARENT, parent, lambda: 4) == 0
    names = parent.names()
    assert names[names.index("pipe"):] == ["pipe", "fork", "close", "read", "close", "write",
                                           *NULL_STDIO, "wait_any", "write", "exit"]


def test_a_fork_server_names_the_target_after_its_owner_then_enters_the_container():
    plan = make_plan()
    kernel = RecordingKernel(replies={"fork_into_pidns": [0], "read": [HELD]})
    msg = pickle.dumps(("key", pickle.dumps(plan)))
    status = run_until_exit(kernel, _fork_one, kernel, msg, [10, 11, 12, 13, 21, 22],
                            lambda key: (lambda: 6), "pytest")
    assert status == 6
    assert kernel.calls[0][:2] == ("fork_into_pidns", 21) and kernel.calls[0][3] is True
    assert kernel.calls[1] == ("child",) and kernel.calls[2] == ("set_name", "pytest")
    assert kernel.names()[3:5] == ["dup_above", "dup_above"]


def test_the_owner_side_of_the_direct_and_held_routes():
    made = []
    kernel = RecordingKernel()
    proc = DirectLauncher(kernel=kernel).start(make_plan(), FDS, lambda: made.append("cgroup"))
    assert made == ["cgroup"] and (proc.pid, proc.direct) == (4242, True)
    assert kernel.names() == ["fork_new_pidns", "pidfd_open", "close", "close", "close", "close"]

    kernel = RecordingKernel()
    child = HeldLauncher(lambda: 0, kernel=kernel)._fork(make_plan(), FDS, 21, 22)
    assert child.pid == 4242 and kernel.names() == ["fork_into_pidns", "pidfd_open"]
    assert kernel.calls[0][1] == 21  # into the held init's pid namespace


def test_the_seccomp_filter_is_loaded_last_after_no_new_privs_and_only_when_confined():
    plan = make_plan()
    assert plan.exec.seccomp is not None and plan.exec.seccomp.profile == "default"
    kernel = RecordingKernel()
    run_until_exit(kernel, init.fresh_main, plan, FDS, PARENT, kernel)
    names = kernel.names()
    assert names.index("set_no_new_privs") < names.index("load_seccomp") == names.index("spawn") - 1
    assert names[names.index("set_dumpable"):names.index("load_seccomp")] == ["set_dumpable", *REARM]
    assert ("load_seccomp", plan.exec.seccomp.program, 0) in kernel.calls

    kernel = RecordingKernel()
    run_until_exit(kernel, init.fresh_main, make_plan(seccomp="unconfined"), FDS, PARENT, kernel)
    assert "load_seccomp" not in kernel.names()


def test_a_user_namespace_is_made_before_the_overlays_and_entered_before_the_user_changes():
    """The init makes it (its maps written from outside it), idmaps the image's dirs with
    it, mounts as its root, and joins it only at the end: the mounts are the host's."""
    plan = make_plan(userns="auto")
    kernel = RecordingKernel()
    assert run_until_exit(kernel, init.fresh_main, plan, FDS, PARENT, kernel) == 0
    names = kernel.names()
    made = names.index("make_userns")
    assert names[made + 1] == "set_fs_ids"  # what the setup makes is the namespace's root's
    overlay = next(i for i, c in enumerate(kernel.calls) if c[:4] == ("mount", "overlay", "/run/sb/abc/root", "overlay"))
    idmapped = [c for c in kernel.calls if c[0] == "idmapped_mount"]
    assert made < names.index("idmapped_mount") < overlay < names.index("pivot_root")
    assert [c[1:3] for c in idmapped] == [("/run/sb/abc", "/run/sb/abc/idmapped"),
                                          ("/images/test/rootfs", "/run/sb/abc/lower/0")]
    assert "lowerdir=0,upperdir=/run/sb/abc/idmapped/upper" in kernel.calls[overlay][5]
    assert ("make_userns", "0 2147483648 65536\n", "0 2147483648 65536\n",
            (2147483648, 2147483648), 0) in kernel.calls  # Docker's capabilities: it owns no other
    assert names[names.index("set_cmdline"):names.index("spawn") + 1] == [
        "set_cmdline", *FORWARDED, "enter_userns", *CREDENTIALS, "set_dumpable", *REARM, "load_seccomp", "spawn"]
    assert ("set_sysctl", "/proc/sys/net/ipv4/ip_unprivileged_port_start", "0") in kernel.calls
    assert plan.unshared_first == plan.unshare_flags


@pytest.mark.parametrize("network, owned", [
    ("none", linux.CLONE_NEWNET | linux.CLONE_NEWUTS), ("host", linux.CLONE_NEWUTS)])
def test_with_net_admin_and_sys_admin_its_network_and_uts_namespaces_are_made_with_it(network, owned):
    """Capabilities beyond Docker's that act on a namespace have it made with the user
    namespace, which owns it: not unshared before (an exec still joins it), made and
    joined by the user namespace step, the network's sysctls set in the one joined."""
    plan = make_plan(userns="auto", network=network, capabilities=("NET_ADMIN", "SYS_ADMIN"))
    kernel = RecordingKernel()
    assert run_until_exit(kernel, init.fresh_main, plan, FDS, PARENT, kernel) == 0
    names = kernel.names()
    made = next(c for c in kernel.calls if c[0] == "make_userns")
    assert made[-1] == owned and plan.unshare_flags & owned == owned
    assert plan.unshared_first == plan.unshare_flags & ~owned
    assert ("unshare", plan.unshared_first) in kernel.calls
    assert f"unshare 0x{plan.unshared_first:08x}" in plan.describe()
    if network == "none":
        assert names.index("make_userns") < names.index("set_sysctl") < names.index("loopback_up")
    else:
        assert "set_sysctl" not in names and "loopback_up" not in names


def test_the_user_namespace_s_helper_is_reaped_after_the_setup_before_the_init_forks():
    """The helper the namespace was made with is killed at once but reaped only once the
    setup is done (it needs the CPU to end: the init does not wait for it meanwhile), and
    before the init's first child, which takes its pid (2): the command, a first target,
    or a held container's target."""
    plan = make_plan(userns="auto")
    hooks = names_of(plan.hooks)
    kernel = RecordingKernel()
    run_until_exit(kernel, init.fresh_main, plan, FDS, PARENT, kernel)
    names = kernel.names()
    assert names.count("reap_userns_helper") == 1
    assert names.index("make_userns") < names.index("pivot_root") < names.index("reap_userns_helper")
    assert names[names.index("reap_userns_helper") - len(hooks):names.index("close_host_netlink")] == [
        *hooks, "reap_userns_helper"]

    first_target = RecordingKernel()
    run_until_exit(first_target, init.fresh_main, plan, FDS, PARENT, first_target, lambda: 4)
    names = first_target.names()
    assert names.index("reap_userns_helper") < names.index("fork")

    held = RecordingKernel(replies={"recv_fds": [(pickle.dumps(plan._replace(hold=True)), list(FDS))],
                                    "read": [spare.GO, b""]})
    run_until_exit(held, spare.spare_main, 5, spare.spare_flags(plan.unshare_flags), PARENT, None, held)
    names = held.names()
    assert names.index("read") < names.index("reap_userns_helper") < names.index("enter_userns")

    kernel = RecordingKernel()
    run_until_exit(kernel, init.fresh_main, make_plan(), FDS, PARENT, kernel)
    assert "reap_userns_helper" not in kernel.names()  # no namespace, no helper


def test_a_held_init_in_a_user_namespace_enters_it_before_it_says_held():
    plan = make_plan(userns="auto")._replace(hold=True)
    kernel = RecordingKernel(replies={"recv_fds": [(pickle.dumps(plan), list(FDS))],
                                      "read": [spare.GO, b""]})
    flags = spare.spare_flags(plan.unshare_flags)
    assert run_until_exit(kernel, spare.spare_main, 5, flags, PARENT, None, kernel) == 0
    names = kernel.names()
    assert names[names.index("set_cmdline", names.index("recv_fds")):] == [
        "set_cmdline", "enter_userns", *NULL_STDIO, "set_signal", "write", "read", "exit"]


def test_a_target_joins_the_user_namespace_after_the_other_namespaces_then_is_confined():
    plan = make_plan(userns="auto")
    kernel = RecordingKernel(replies={"read": [HELD]})
    assert run_until_exit(kernel, enter_held, plan, FDS, lambda: 5, 21, 22, kernel) == 5
    names = kernel.names()
    assert names[names.index("setns"):] == [
        "setns", "join_userns", "close_range", "reset_signals", *CREDENTIALS, "set_environ",
        "load_seccomp", "write", "close", "exit"]
    assert ("join_userns", 100) in kernel.calls  # the init's pidfd, moved above 3


def test_the_dry_run_shows_the_user_namespace_and_the_filter():
    text = make_plan(userns="auto").describe()
    assert "on the host: lease 65536 host uids and gids for the user namespace" in text
    assert "make the user namespace (ids 0-65535" in text
    assert "enter the user namespace" in text
    assert text.index("load the seccomp filter (default profile") < text.index("exec sh -c true")


# -- a command on a terminal ---------------------------------------------------------------

TTY_FDS = ChildFds(10, 11, 12, 13, 14)
#: fds.arrange with a console socket: it is moved above 3 first, and kept.
ARRANGE_WITH_CONSOLE = ["dup_above", *ARRANGE[:-1], "close_range", "close_range"]
#: console.open_console: the pty, its size and owner, the master sent and closed here.
OPEN_CONSOLE = ["open_pty", "set_window_size", "fchown", "send_fds", "close", "close"]


def test_a_command_on_a_terminal_gets_a_pty_made_inside_before_the_user_changes():
    """runc's order: the pty is opened in the container's devpts after pivot_root, as root;
    its master goes to the owner on the console socket and is closed here; then the user."""
    plan = make_plan(tty=True)
    kernel = RecordingKernel()
    assert run_until_exit(kernel, init.fresh_main, plan, TTY_FDS, PARENT, kernel) == 0
    names = kernel.names()
    assert names[:len(ARRANGE_WITH_CONSOLE)] == ARRANGE_WITH_CONSOLE
    assert names[names.index("set_cmdline") + 1:] == [
        *FORWARDED, *OPEN_CONSOLE, *CREDENTIALS, "set_dumpable", *REARM, "load_seccomp", "fork",
        "close", "write",
        *NULL_STDIO, "wait_any", "write", "exit"]
    console = kernel.calls[0]  # dup_above(14, 4): where the console socket is kept
    assert console == ("dup_above", 14, 4)
    calls = kernel.calls
    _, master, rows, cols = calls[names.index("set_window_size")]
    _, peer, uid, gid = calls[names.index("fchown")]
    assert (rows, cols, uid, gid) == (24, 80, 1000, 1000)  # the user's terminal, sized
    assert calls[names.index("send_fds")] == ("send_fds", 100, b"pty", [master])
    assert calls[names.index("send_fds") + 1:names.index("send_fds") + 3] == [
        ("close", master), ("close", 100)]  # neither the master nor the socket stays
    assert calls[names.index("fork") + 1] == ("close", peer)
    assert "spawn" not in names  # a fork: the controlling terminal needs an ioctl


def test_the_command_on_a_terminal_is_a_session_leader_with_the_pty_as_controlling_tty():
    plan = make_plan(tty=True)
    kernel = RecordingKernel(replies={"fork": [0]})  # follow the command's side of the fork
    run_until_exit(kernel, init.fresh_main, plan, TTY_FDS, PARENT, kernel)
    names = kernel.names()
    assert names[names.index("fork") + 1:] == [
        "reset_signals", "setsid", "set_controlling_tty", "dup2", "dup2", "dup2", "close",
        "execve"]
    peer = kernel.calls[names.index("fchown")][1]
    assert ("set_controlling_tty", peer) in kernel.calls
    assert kernel.calls[-1][0] == "execve" and kernel.calls[-1][2] == ("sh", "-c", "true")


def test_a_terminal_that_cannot_be_made_fails_at_its_step_and_nothing_runs():
    kernel = RecordingKernel(fail_on="open_pty")
    plan = make_plan(tty=True)
    assert run_until_exit(kernel, init.fresh_main, plan, TTY_FDS, PARENT, kernel) == SETUP_FAILED
    assert "fork" not in kernel.names() and "set_ids" not in kernel.names()
    assert b'"step": "open a terminal"' in kernel.calls[-2][2]


def test_a_command_on_a_terminal_in_a_user_namespace_gets_a_pty_owned_by_its_mapped_ids():
    plan = make_plan(userns="auto", tty=True)
    kernel = RecordingKernel()
    run_until_exit(kernel, init.fresh_main, plan, TTY_FDS, PARENT, kernel)
    names = kernel.names()
    assert names.index("open_pty") < names.index("enter_userns") < names.index("set_ids")
    _, _, uid, gid = kernel.calls[names.index("fchown")]
    assert (uid, gid) == (USERNS.uid_base + 1000, USERNS.gid_base + 1000)


def test_a_spare_keeps_the_console_socket_through_its_plan():
    plan = make_plan(tty=True)
    kernel = RecordingKernel(replies={"recv_fds": [(pickle.dumps(plan), list(TTY_FDS))],
                                      "read": [spare.GO]})
    flags = spare.spare_flags(plan.unshare_flags)
    assert run_until_exit(kernel, spare.spare_main, 5, flags, PARENT, None, kernel) == 0
    names = kernel.names()
    assert "open_pty" in names and names.index("open_pty") > names.index("read")  # after "go"
    moved = [c for c in kernel.calls if c[:2] == ("dup_above", 14)]
    assert len(moved) == 1  # the console socket, moved above 3 and kept through the mounts
    sent = names.index("send_fds")
    sock = kernel.calls[sent][1]
    assert kernel.calls[sent + 2] == ("close", sock)  # used once, then closed


# -- a process started in a running container (sandbox exec) ----------------------------------

INIT_NAMESPACES = ((1, 11), (1, 12), (1, 13), (1, 14), (1, 15), (1, 16))


def make_exec_plan(**changes):
    from sandbox.entry import entry_of, exec_plan

    entry = entry_of(make_plan(), 1 << 20)
    return exec_plan("abc", entry, (os.getpid(), None, INIT_NAMESPACES), ["sh", "-c", "true"],
                     **changes)


def test_an_exec_closes_fds_goes_non_dumpable_joins_the_cgroup_then_the_namespaces():
    """runc's nsexec: no host fd left, non-dumpable before joining, the cgroup by the
    host's path, one setns by pidfd (pid included), each namespace checked, then the
    command as an init starts one."""
    from sandbox.process.enter import enter_main

    plan = make_exec_plan()
    kernel = RecordingKernel(replies={"namespace_ids": [INIT_NAMESPACES]})
    assert run_until_exit(kernel, enter_main, plan, FDS, 21, PARENT, kernel) == 0
    assert kernel.names() == [
        "dup_above", *ARRANGE_KEEPING_2[:-1], "open", "set_pdeathsig", "setsid", "set_dumpable",
        "join_cgroup", "open", "setns", "namespace_ids", "close", "close", "set_name",
        *FORWARDED, *CREDENTIALS, "set_dumpable", *REARM, "load_seccomp", "spawn", "write",
        "dup2", "dup2", "dup2", "wait_any", "write", "exit"]
    calls = kernel.calls
    assert calls[0] == ("dup_above", 21, 4)  # the init's pidfd, kept
    assert ("set_dumpable", False) in calls[:calls.index(("join_cgroup", plan.cgroup_procs))]
    assert ("setns", 100, plan.unshare_flags | linux.CLONE_NEWPID) in calls
    assert ("set_name", "sandbox-exec") in calls
    opened = [c for c in calls if c[0] == "open"]
    assert opened[0][1] == "/dev/null" and opened[1][1] == "/proc/self/ns"  # both the host's


def test_an_exec_that_joined_other_namespaces_than_the_inits_runs_nothing():
    from sandbox.process.enter import enter_main

    wrong = ((1, 11), (1, 99), *INIT_NAMESPACES[2:])
    kernel = RecordingKernel(replies={"namespace_ids": [wrong]})
    status = run_until_exit(kernel, enter_main, make_exec_plan(), FDS, 21, PARENT, kernel)
    assert status == SETUP_FAILED and "spawn" not in kernel.names()
    assert b'"step": "enter namespaces"' in kernel.calls[-2][2]
    assert b"uts namespace" in kernel.calls[-2][2]


def test_an_exec_on_a_terminal_opens_its_pty_in_the_container_it_joined():
    from sandbox.process.enter import enter_main

    plan = make_exec_plan(tty_size=(30, 100))
    kernel = RecordingKernel(replies={"namespace_ids": [INIT_NAMESPACES]})
    run_until_exit(kernel, enter_main, plan, TTY_FDS, 21, PARENT, kernel)
    names = kernel.names()
    assert names.index("setns") < names.index("open_pty") < names.index("set_ids")
    assert kernel.calls[names.index("set_window_size")][2:] == (30, 100)


def make_userns_exec_plan(**changes):
    from sandbox.entry import entry_of, exec_plan

    entry = entry_of(make_plan(userns="auto"), 1 << 20)
    return exec_plan("abc", entry, (os.getpid(), None, INIT_NAMESPACES), ["sh", "-c", "true"],
                     **changes)


def test_an_exec_into_a_user_namespace_joins_it_last_by_the_same_pidfd_then_is_confined():
    """The sandbox's other namespaces are the host's (its init made them as host root):
    they are joined first, together, as root of the host; the user namespace alone, by
    the same pidfd, right before the user changes, then the filter."""
    from sandbox.process.enter import enter_main

    plan = make_userns_exec_plan()
    assert plan.exec.userns == USERNS
    kernel = RecordingKernel(replies={"namespace_ids": [INIT_NAMESPACES]})
    assert run_until_exit(kernel, enter_main, plan, FDS, 21, PARENT, kernel) == 0
    assert kernel.names() == [
        "dup_above", *ARRANGE_KEEPING_2[:-1], "open", "set_pdeathsig", "setsid", "set_dumpable",
        "join_cgroup", "open", "setns", "namespace_ids", "keep_userns", "close", "set_name",
        *FORWARDED, "enter_userns", *CREDENTIALS, "set_dumpable", *REARM, "load_seccomp", "spawn",
        "write", "dup2", "dup2", "dup2", "wait_any", "write", "exit"]
    calls = kernel.calls
    assert ("setns", 100, plan.unshare_flags | linux.CLONE_NEWPID) in calls
    assert not plan.unshare_flags & linux.CLONE_NEWUSER  # never in the one setns: refused there
    assert ("keep_userns", 100) in calls  # the init's pidfd (moved above 3), not closed
    assert ("close", 100) not in calls
    assert ("set_ids", 1000, 1000, (1000,)) in calls  # ids inside the namespace


def test_an_exec_on_a_terminal_in_a_user_namespace_gives_the_pty_to_the_users_host_ids():
    """The pty is made as the init makes its own: as root of the host in the sandbox's
    devpts, before the user namespace is entered; so its owner is given as the host ids
    the user is (the range's), which show as the user's own inside."""
    from sandbox.process.enter import enter_main

    plan = make_userns_exec_plan(tty_size=(30, 100))
    kernel = RecordingKernel(replies={"namespace_ids": [INIT_NAMESPACES]})
    run_until_exit(kernel, enter_main, plan, TTY_FDS, 21, PARENT, kernel)
    names = kernel.names()
    assert (names.index("setns") < names.index("keep_userns") < names.index("open_pty")
            < names.index("enter_userns") < names.index("set_ids") < names.index("load_seccomp"))
    _, _, uid, gid = kernel.calls[names.index("fchown")]
    assert (uid, gid) == (USERNS.uid_base + 1000, USERNS.gid_base + 1000)


def test_an_exec_plan_keeps_the_sandboxs_range_and_says_how_it_enters():
    from sandbox.entry import entry_of

    entry = entry_of(make_plan(userns="auto"), 1 << 20)
    assert entry["userns"] == list(USERNS)
    assert entry_of(make_plan(), 1 << 20)["userns"] is None
    text = make_userns_exec_plan(tty_size=(24, 80)).describe()
    lines = text.splitlines()
    keep = next(i for i, line in enumerate(lines) if line.startswith("keep the pidfd"))
    pty = next(i for i, line in enumerate(lines) if line.startswith("open a pty"))
    enter = next(i for i, line in enumerate(lines) if line.startswith("enter the user namespace"))
    seccomp = next(i for i, line in enumerate(lines) if line.startswith("load the seccomp filter"))
    assert keep < pty < enter < seccomp < len(lines) - 1


def test_a_record_that_kept_no_range_gives_the_inits_maps():
    """Written before the range was kept (``"userns": true``): read from /proc."""
    from sandbox.entry import user_namespace

    assert user_namespace({"userns": None}, os.getpid()) is None
    with open("/proc/self/uid_map") as f:
        _, base, size = (int(n) for n in f.read().split())
    assert user_namespace({"userns": True}, os.getpid())[::2] == (base, size)
    with pytest.raises(StateError, match="has ended"):
        user_namespace({"userns": True}, 1 << 30)  # above pid_max: no such process


def test_the_owner_side_of_the_exec_route_checks_the_init_then_forks():
    from sandbox.linux.proc import own_start_time
    from sandbox.process.launch_exec import ExecLauncher

    plan = make_exec_plan()._replace(enter=(os.getpid(), own_start_time(), INIT_NAMESPACES))
    kernel = RecordingKernel()
    proc = ExecLauncher(here=True, kernel=kernel).start(plan, FDS, lambda: None)
    assert (proc.pid, proc.direct) == (4242, True)
    assert kernel.names() == ["pidfd_open", "fork", "pidfd_open", "close", "close", "close",
                              "close", "close"]

    gone = make_exec_plan()._replace(enter=(os.getpid(), 1, INIT_NAMESPACES))  # a recycled pid
    kernel = RecordingKernel()
    with pytest.raises(StateError, match="has ended"):
        ExecLauncher(here=True, kernel=kernel).start(gone, FDS, lambda: None)
    assert "fork" not in kernel.names() and kernel.names().count("close") == 5


@pytest.mark.parametrize("isolated", [False, True], ids=["shared", "isolated"])
def test_a_bridge_member_s_port_is_made_and_isolated_from_the_host_before_its_end_comes_up(
        isolated):
    """The veth request, and on an isolated network the port's flag, go on the socket opened
    in the host's namespace, before unshare; only then is the container's end addressed and
    brought up, so no frame crosses a member's port before it is isolated."""
    from sandbox import NetworkSpec
    from sandbox.network import _connect
    from sandbox.network.model import Network

    network = Network("cls", "sbxroutes", "10.231.20.0/24", isolated=isolated)
    attachment = _connect(network, "abc", "10.231.20.2", "s1", False, (), master=7)
    spec = SandboxSpec(image="test", command=["sh", "-c", "true"], network=NetworkSpec("cls"))
    plan = build_plan(spec, IMAGE, "abc", "/run/sb/abc", None, network=attachment,
                      ids=(0, 0, (0,), "/"))
    kernel = RecordingKernel()
    assert run_until_exit(kernel, init.fresh_main, plan, FDS, PARENT, kernel) == 0
    names = kernel.names()
    assert names.index("open_host_netlink") < names.index("unshare")
    requests = [(args[0], args[2]) for name, *args in kernel.calls if name == "netlink_request"]
    host = requests[0][0]
    isolate = [(host, "isolate the bridge port")] if isolated else []
    assert requests[:len(isolate) + 1] == [(host, "create the veth pair"), *isolate]
    assert [what for _, what in requests[len(isolate) + 1:]] == [
        "add the address to eth0", "bring eth0 up", "add the default route"]
    assert all(sock is not host for sock, _ in requests[len(isolate) + 1:])
    sent = [i for i, name in enumerate(names) if name == "netlink_request"]
    assert sent[len(isolate)] < names.index("interface_index") < sent[len(isolate) + 1]
