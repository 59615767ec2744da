"""What the container is, seen from inside: namespaces, filesystem, capabilities."""

import os
import socket

import pytest

from sandbox import Mount, SandboxSpec, run
from sandbox.linux.caps import CAPABILITIES, mask
from sandbox.spec import DEFAULT_CAPABILITIES

pytestmark = [pytest.mark.root, pytest.mark.usefixtures("spawn_mode")]


def sh(script, image="busybox", **kw):
    return run(SandboxSpec(image=image, command=["sh", "-c", script], **kw))


def test_the_command_runs_under_its_own_pid_1_init_and_sees_only_its_processes():
    r = sh("echo $$; ps -o pid,comm | tail -n +2; cat /proc/1/comm")
    lines = r.stdout.decode().split()
    assert lines[0] == "2"  # the shell is the init's first child
    assert lines[-1] == "sandbox-init"
    pids = {int(x) for x in lines[1:-1:2]}
    assert pids <= {1, 2, 3, 4, 5} and os.getpid() not in pids


def test_own_hostname_ipc_and_mount_namespace():
    r = sh("hostname; cat /proc/self/mountinfo | wc -l; ipcs -m | wc -l", hostname="t1")
    host_ns = os.readlink("/proc/self/ns/mnt")
    hostname, *_ = r.stdout.decode().split()
    assert hostname == "t1" and socket.gethostname() != "t1"
    inside = sh("readlink /proc/self/ns/mnt /proc/self/ns/net /proc/self/ns/cgroup /proc/self/ns/uts")
    assert host_ns not in inside.stdout.decode()
    assert os.readlink("/proc/self/ns/net") not in inside.stdout.decode()


def test_loopback_only_and_up():
    r = sh("ls /sys/class/net; cat /sys/class/net/lo/operstate; ping -c1 -W1 127.0.0.1 >/dev/null && echo pong")
    out = r.stdout.decode().split()
    assert out[0] == "lo" and out[-1] == "pong" and len(out) == 3


def test_cannot_reach_a_port_on_the_host():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    try:
        port = server.getsockname()[1]
        r = sh(f"nc -w 1 127.0.0.1 {port} </dev/null && echo connected || echo refused")
        assert r.stdout.strip() == b"refused"
    finally:
        server.close()


def test_writes_go_to_a_throwaway_layer():
    first = sh("echo data > /etc/new; echo more >> /etc/passwd; cat /etc/new")
    assert first.stdout == b"data\n"
    second = sh("ls /etc/new 2>&1; grep -c more /etc/passwd")
    assert b"No such file" in second.stdout and second.stdout.endswith(b"0\n")


def test_host_image_writes_go_to_a_throwaway_layer_and_the_host_stays_private(tmp_path):
    marker = tmp_path / "host-file"
    r = sh(f"touch /usr/sbx-test && echo usr; echo x >> /etc/hostname && echo etc; ls {tmp_path} 2>&1; "
           f"echo x > /tmp/private; echo ok > /root-write && cat /root-write", image="host")
    out = r.stdout.decode()
    assert out.startswith("usr\netc\n") and "Read-only" not in out
    assert "No such file" in out and out.endswith("ok\n")
    assert not os.path.exists("/usr/sbx-test") and not marker.exists()
    assert not os.path.exists("/root-write") and not open("/etc/hostname").read().endswith("x\n")


def test_host_image_runs_the_hosts_python():
    r = run(SandboxSpec(image="host", command=["python3", "-c", "import sys; print(sys.version)"]))
    assert r.exit_code == 0 and r.stdout.startswith(b"3.")


def test_bind_mounts_read_only_by_default_and_read_write_when_asked(tmp_path):
    (tmp_path / "in.txt").write_text("hello")
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    r = sh("cat /src/in.txt; echo x > /src/y 2>&1; echo written > /out/result",
           mounts=[Mount(str(tmp_path), "/src"), Mount(str(out_dir), "/out", read_only=False)])
    assert r.stdout.startswith(b"hello")
    assert b"Read-only" in r.stderr
    assert (out_dir / "result").read_text() == "written\n"
    assert not (tmp_path / "y").exists()


def test_read_only_bind_is_read_only_in_its_submounts_too(tmp_path):
    # /proc is a submount of / : binding / read-only must not leave /proc/sys writable
    r = sh("echo 1 > /host/proc/sys/kernel/printk_ratelimit 2>&1 || echo refused; "
           "touch /host/tmp/sbx-x 2>&1 || echo refused", mounts=[Mount("/", "/host")])
    assert r.stdout.decode().count("refused") == 2


def _caps(status: bytes, field: str) -> int:
    for line in status.decode().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1], 16)
    raise AssertionError(field)


def test_default_capabilities_no_new_privs_and_no_caps_when_asked():
    r = sh("cat /proc/self/status")
    assert _caps(r.stdout, "CapEff") == mask(DEFAULT_CAPABILITIES)
    assert _caps(r.stdout, "CapBnd") == mask(DEFAULT_CAPABILITIES)
    assert b"NoNewPrivs:\t1" in r.stdout
    none = sh("cat /proc/self/status; mount -t tmpfs x /mnt 2>&1", capabilities=())
    assert _caps(none.stdout, "CapEff") == 0 and _caps(none.stdout, "CapBnd") == 0
    assert b"permission denied" in none.stdout.lower() and none.exit_code != 0
    assert not _caps(r.stdout, "CapEff") & (1 << CAPABILITIES["SYS_ADMIN"])


def test_sensitive_proc_paths_are_masked_or_read_only():
    r = sh("exec 2>&1; cat /proc/keys | wc -c; echo 1 > /proc/sys/vm/drop_caches; "
           "ls /sys/firmware | wc -l; touch /sys/x; "
           "if [ -e /proc/kcore ]; then wc -c < /proc/kcore; else echo 0; fi; "
           "if [ -e /proc/sysrq-trigger ]; then echo 1 > /proc/sysrq-trigger; fi")
    out = r.stdout.decode()
    numbers = [line for line in out.splitlines() if line.strip().isdigit()]
    assert numbers == ["0", "0", "0"]  # /proc/keys, /sys/firmware and /proc/kcore are empty
    assert out.count("Read-only file system") >= 2  # /proc/sys and /sys


def test_minimal_dev():
    r = sh("ls /dev; echo hi > /dev/null; head -c 4 /dev/zero | wc -c; ls /dev/pts; test -c /dev/ptmx && echo ptmx")
    names = set(r.stdout.decode().split())
    assert {"null", "zero", "full", "random", "urandom", "tty", "pts", "shm", "ptmx"} <= names
    assert "sda" not in names and "vda" not in names and "4" in names


def test_user_env_workdir():
    r = sh("id -u; id -g; echo $A; pwd; echo $HOME", user="65534:65534", env={"A": "1"},
           workdir="/made/on/demand")
    assert r.stdout.decode().split() == ["65534", "65534", "1", "/made/on/demand", "/nonexistent"]
    named = sh("id -un", user="nobody")
    assert named.stdout == b"nobody\n"


def test_host_paths_under_tmp_shown_by_an_image_are_not_hidden_by_tmp(tmp_path):
    """A checkout under /tmp (as CI makes) stays visible when the image shows it."""
    from sandbox import images as images_module
    from sandbox.images import Image

    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "mod.txt").write_text("here")
    (tmp_path / "skeleton").mkdir()  # the last layer of an image with host dirs
    image = images_module.get("busybox")
    shown = Image("shown", image.layers + (str(tmp_path / "skeleton"),),
                  host_dirs=(str(tmp_path / "pkg"),))
    original = images_module.get
    images_module.get = lambda name: shown if name == "shown" else original(name)
    try:
        r = run(SandboxSpec(image="shown", command=["cat", str(tmp_path / "pkg" / "mod.txt")]))
    finally:
        images_module.get = original
    assert r.stdout == b"here"


def test_a_bind_into_proc_does_not_uncover_the_masked_paths(tmp_path):
    (tmp_path / "note").write_text("bound\n")
    r = sh("cat /proc/driver/note; cat /proc/keys | wc -c; touch /proc/sys/x 2>/dev/null || echo ro",
           mounts=[Mount(str(tmp_path), "/proc/driver")])
    assert r.exit_code == 0 and r.stdout.split() == [b"bound", b"0", b"ro"]
