"""--userns=auto: root in the sandbox is a range of host ids that no host user has.

Each sandbox leases a range from the sandbox entries of /etc/subuid and
/etc/subgid; its files show as the image's, its writes through a bind come
out as the ids it wrote them as, and seen from the host every one of its
processes runs as an id of its range: a process that escaped would be
nobody. Its leases go with it, a commit stores the image's own ids, and a
Python target runs in it on every route.
"""

from __future__ import annotations

import fcntl
import os

import pytest

from sandbox import HostError, Mount, Sandbox, SandboxSpec, run
from sandbox.security import subids
from sandbox.spec import capabilities_from

from .helpers import sandbox_cli, wait_for

pytestmark = pytest.mark.root

RANGE = 65536


def sh(script: str, image: str = "busybox", **options):
    return run(SandboxSpec(image=image, command=["sh", "-c", script], userns="auto", **options),
               log_file=False)


def leases() -> set[str]:
    try:
        return set(os.listdir(subids.leases_dir()))
    except FileNotFoundError:
        return set()


def test_root_inside_is_a_range_of_host_ids_and_the_image_shows_as_its_own():
    r = sh("id -u; cat /proc/self/uid_map /proc/self/gid_map; ls -ldn / /bin/busybox /tmp; "
           "echo hi > /new && ls -ln /new; echo $$")
    assert r.exit_code == 0, r.stderr
    uid, uid_map, gid_map, *listing, pid = r.stdout.decode().splitlines()
    inside, host, size = uid_map.split()
    assert uid == "0" and inside == "0" and int(host) >= 1 << 31 and size == str(RANGE)
    assert gid_map.split()[0] == "0" and int(gid_map.split()[2]) == RANGE
    assert all(line.split()[2:4] == ["0", "0"] for line in listing), listing
    assert pid == "2"  # the helper that made the namespace left no trace in the pid numbers
    assert not leases()


def test_seen_from_the_host_every_process_of_the_sandbox_is_an_id_of_its_range():
    spec = SandboxSpec(image="busybox", command=["sh", "-c", "echo ready; exec sleep 1000"],
                       userns="auto")
    with Sandbox(spec, log_file=False) as box:
        wait_for(lambda: b"ready" in box.stdout)
        (index,) = leases()
        base = subids.available()[int(index)].uid_base
        pids = []
        for path in box.cgroup.paths:
            pids += open(os.path.join(path, "cgroup.procs")).read().split()
        assert len(set(pids)) == 2  # the init and sleep
        for pid in set(pids):
            ids = [line.split()[1:] for line in open(f"/proc/{pid}/status")
                   if line.startswith(("Uid:", "Gid:"))]
            assert all(base <= int(i) < base + RANGE for row in ids for i in row), (pid, ids)
        box.kill()
    assert not leases()


def test_two_sandboxes_get_two_ranges():
    spec = SandboxSpec(image="busybox", command=["sh", "-c", "cat /proc/self/uid_map; sleep 1"],
                       userns="auto")
    with Sandbox(spec, log_file=False) as a, Sandbox(spec, log_file=False) as b:
        assert len(leases()) == 2
        first, second = a.wait().stdout.split()[1], b.wait().stdout.split()[1]
    assert first != second and not leases()


def test_writes_through_a_bind_keep_the_ids_they_were_made_as(tmp_path):
    r = sh("echo a > /data/by-root; echo b > /data/by-1000; chown 1000:1000 /data/by-1000",
           mounts=(Mount(str(tmp_path), "/data", read_only=False),))
    assert r.exit_code == 0, r.stderr
    assert [(os.stat(tmp_path / n).st_uid, os.stat(tmp_path / n).st_gid)
            for n in ("by-root", "by-1000")] == [(0, 0), (1000, 1000)]


def test_a_non_root_user_keeps_no_capabilities_in_a_command_or_a_target(spawn_mode):
    r = sh("grep -E 'Cap(Prm|Eff)' /proc/self/status", user="1000")
    assert r.stdout.split() == [b"CapPrm:", b"0000000000000000", b"CapEff:", b"0000000000000000"]

    def capabilities() -> int:
        status = open("/proc/self/status").read()
        eff = next(line for line in status.splitlines() if line.startswith("CapEff:"))
        return 1 if int(eff.split()[1], 16) else 0

    spec = SandboxSpec(image="host", command=["python-target"], user="1000", userns="auto")
    for _ in range(2):  # the first target is forked by its init, later ones into a held one
        with Sandbox(spec, target=capabilities, log_file=False) as box:
            assert box.wait().exit_code == 0


def _whoami() -> int:
    with open("/proc/self/uid_map") as f:
        inside, host, _ = f.read().split()
    return 0 if os.getuid() == 0 and inside == "0" and int(host) >= 1 << 31 else 1


def test_a_python_target_runs_in_the_namespace_on_every_route(spawn_mode):
    spec = SandboxSpec(image="host", command=["python-target"], userns="auto")
    for _ in range(2):
        with Sandbox(spec, target=_whoami, log_file=False) as box:
            assert box.wait().exit_code == 0
    assert not leases()


def _alone_with_its_init() -> int:
    pids = sorted(int(name) for name in os.listdir("/proc") if name.isdigit())
    return 0 if pids == [1, os.getpid()] else 1


def test_a_python_target_finds_no_process_but_its_init_on_every_route(spawn_mode):
    """The helper the namespace was made with is reaped before the init's first child
    (forked by the init, or into a held container by its owner) starts."""
    spec = SandboxSpec(image="host", command=["python-target"], userns="auto")
    for _ in range(2):
        with Sandbox(spec, target=_alone_with_its_init, log_file=False) as box:
            assert box.wait().exit_code == 0


def test_the_host_image_is_writable_and_its_secrets_stay_hidden():
    r = sh("echo x >> /etc/motd && tail -1 /etc/motd; wc -c < /etc/shadow; id -un; "
           "python3 -c 'import os; print(os.getuid())'", image="host")
    assert r.exit_code == 0, r.stderr
    assert r.stdout.decode().split() == ["x", "0", "root", "0"]


def test_ports_below_1024_and_ping_sockets_work_for_its_root():
    """Its root has no capability over the network namespace (the host's owns it): the
    namespace's sysctls let everyone bind low ports and open ICMP echo sockets, as Docker does."""
    r = sh("python3 -c 'import socket; socket.socket().bind((\"127.0.0.1\", 80)); print(\"bound\"); "
           "socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_ICMP); print(\"ping\")'",
           image="host")
    assert r.stdout.split() == [b"bound", b"ping"], r.stderr


def test_with_net_admin_and_sys_admin_its_root_holds_them_over_its_network_and_hostname():
    """Given NET_ADMIN and SYS_ADMIN, the network and UTS namespaces are made inside the
    user namespace, which owns them: raw sockets (busybox's ping), an address on its lo, a
    hostname of its choice. The mount namespace stays the host's: a mount is still
    refused. With Docker's capabilities the host's user namespace owns them all, as a
    spare made them ahead: no raw socket, no hostname."""
    caps = capabilities_from(add=["SYS_ADMIN", "NET_ADMIN"])
    r = sh("ping -c1 -W5 127.0.0.1 >/dev/null && echo ping; hostname renamed && hostname; "
           "ip addr add 192.0.2.1/32 dev lo && ip -o addr show lo | grep -o 192.0.2.1; "
           "mount -t tmpfs none /mnt 2>/dev/null && echo mounted || echo refused", capabilities=caps)
    assert r.stdout.decode().split() == ["ping", "renamed", "192.0.2.1", "refused"], r.stderr
    plain = sh("ping -c1 -W5 127.0.0.1 >/dev/null; echo ping=$?; hostname renamed; echo hostname=$?")
    assert plain.stdout.decode().split() == ["ping=1", "hostname=1"], plain.stderr
    assert b"permission denied" in plain.stderr


@pytest.mark.parametrize("caps", [None, ("NET_ADMIN", "SYS_ADMIN")], ids=["docker-caps", "net-sys-admin"])
def test_seen_from_the_host_its_namespaces_are_owned_as_its_capabilities_need(caps):
    """Seen from the host (NS_GET_USERNS): with Docker's capabilities every namespace of
    the init belongs to the host's user namespace; with NET_ADMIN and SYS_ADMIN its network
    and UTS namespaces belong to its own; its mount and pid namespaces stay the host's."""
    spec = SandboxSpec(image="busybox", command=["sleep", "1000"], userns="auto",
                       capabilities=capabilities_from(add=caps) if caps else None)
    with Sandbox(spec) as box:
        pid = box.process.pid
        own = os.stat(f"/proc/{pid}/ns/user").st_ino
        owners = {name: _owner(f"/proc/{pid}/ns/{name}") for name in ("net", "uts", "ipc", "mnt", "pid")}
        hostname = box.exec(["hostname"]).run().stdout
    host = os.stat("/proc/self/ns/user").st_ino
    theirs = own if caps else host
    assert owners == {"net": theirs, "uts": theirs, "ipc": host, "mnt": host, "pid": host}
    assert hostname == b"sandbox\n"  # an exec joins the init's, wherever it was made


def _owner(path: str) -> int:
    """The inode of the user namespace that owns the namespace at ``path``."""
    fd = os.open(path, os.O_RDONLY)
    try:
        owner = fcntl.ioctl(fd, NS_GET_USERNS)
    finally:
        os.close(fd)
    try:
        return os.fstat(owner).st_ino
    finally:
        os.close(owner)


NS_GET_USERNS = 0xB701  # _IO(0xb7, 0x1), ioctl_ns(2)


def test_a_commit_stores_the_image_s_own_ids():
    from sandbox import images

    spec = SandboxSpec(image="busybox", userns="auto", name="to-commit",
                       command=["sh", "-c", "echo a > /owned; chown 1000:1000 /owned; echo ready; "
                                "exec sleep 1000"])
    with Sandbox(spec, log_file=False) as box:
        wait_for(lambda: b"ready" in box.stdout)
        committed = sandbox_cli("commit", "to-commit", "userns-commit:1")
        assert committed.returncode == 0, committed.stderr
        box.kill()
    try:
        r = run(SandboxSpec(image="userns-commit:1", command=["sh", "-c", "ls -n /owned"]),
                log_file=False)
        assert r.stdout.split()[2:4] == [b"1000", b"1000"]
    finally:
        images.remove_image("userns-commit:1")


def test_without_a_sandbox_entry_it_is_one_line_and_nothing_is_made(tmp_path, monkeypatch):
    (tmp_path / "subuid").write_text("someone:100000:65536\n")
    monkeypatch.setenv("SANDBOX_SUBUID", str(tmp_path / "subuid"))
    with pytest.raises(HostError) as info:
        Sandbox(SandboxSpec(image="busybox", command=["true"], userns="auto")).run()
    assert "no uid range for sandboxes" in str(info.value) and "subuid" in str(info.value)
    cli = sandbox_cli("run", "--userns", "auto", "busybox", "--", "true")
    assert cli.returncode == 125 and cli.stderr.count(b"\n") == 1, cli.stderr
    assert not leases()


def test_leases_of_vanished_sandboxes_are_collected(tmp_path):
    os.makedirs(subids.leases_dir(), exist_ok=True)
    os.symlink("0123456789ab", os.path.join(subids.leases_dir(), "7"))
    gc = sandbox_cli("gc")
    assert gc.returncode == 0 and b"uid range 7" in gc.stdout
    assert not leases()


def test_the_dry_run_shows_the_namespace_steps():
    r = sandbox_cli("run", "--dry-run", "--userns", "auto", "-v", "/etc:/hostetc", "busybox", "--", "id")
    text = r.stdout.decode()
    assert r.returncode == 0, r.stderr
    for step in ("lease 65536 host uids and gids", "make the user namespace", "idmap the writable layer",
                 "overlay of 1 idmapped layers", "bind mount /etc:/hostetc", "enter the user namespace"):
        assert step in text, (step, text)
    assert text.index("make the user namespace") < text.index("mount the busybox image")
    assert text.index("enter the user namespace") < text.index("load the seccomp filter")
