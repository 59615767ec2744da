"""A hostile sandbox exhausts what it is given, and the sandbox beside it still does its work.

The hostile ones, all at once: one fills /dev/shm (which counts against its
memory, so it is OOM-killed), one fork-bombs (its pids limit), one opens
files until its nofile rlimit says no and holds them, one writes until its
--disk says no space, and two take inotify instances (each watching files)
until their nofile rlimit says no and hold them: one as the host's root, as
every sandbox without a user namespace is, one in a user namespace of its
own. While they hold what they took, a normal sandbox forks, writes to
/dev/shm and to its disk, opens files and watches a file with inotify, and
finishes its work. (No assertion on time: the normal sandbox ending with all
its work done, and each hostile one stopped by its own limit, is the claim.)

inotify instances and watches are counted per user of the host: with the
kernel's default ceiling (fs.inotify.max_user_instances, 128), a sandbox that
is the host's root could take every instance root has, from the other
sandboxes and from the host. scripts/setup.sh raises the ceilings above what
memory reaches (`sandbox doctor`'s "per-user counts"), so what stops the
hog is its own rlimit, and it takes more than the old ceiling.
"""

from __future__ import annotations

import textwrap

import pytest

from sandbox import Limits, Sandbox, SandboxSpec, Ulimit, run
from sandbox.doctor import check_per_user_counts

pytestmark = pytest.mark.root

MiB = 1 << 20
#: how long a hostile sandbox may take to reach its limit before the test calls it a hang
HANG_GUARD = 60.0

#: Opens files until its rlimit refuses, says how many, and holds them.
OPEN_FILES = textwrap.dedent("""
    import os, sys, time
    held = []
    try:
        while True:
            held.append(os.open("/etc/hostname", os.O_RDONLY))
    except OSError as exc:
        print("opened", len(held), exc.strerror, flush=True)
    time.sleep(600)
""")

#: Takes inotify instances, each watching 32 files, until the kernel refuses, says how
#: many, and holds them.
INOTIFY = textwrap.dedent("""
    import ctypes, os, time
    libc = ctypes.CDLL(None, use_errno=True)
    files = [os.path.join("/usr/bin", name).encode() for name in sorted(os.listdir("/usr/bin"))[:32]]
    held = []
    while (fd := libc.inotify_init1(0)) >= 0:
        held.append(fd)
        if not all(libc.inotify_add_watch(fd, name, 0x2) >= 0 for name in files):
            break
    print("inotify", len(held), os.strerror(ctypes.get_errno()), flush=True)
    time.sleep(600)
""")
#: the hogs' nofile: well above the kernel's default ceiling of 128 instances
INOTIFY_NOFILE = 512

#: What a CI job does: processes, /dev/shm, disk, open files, inotify.
NORMAL = textwrap.dedent("""
    import ctypes, os, subprocess
    children = [subprocess.Popen(["true"]) for _ in range(32)]
    print("forked", sum(c.wait() == 0 for c in children))
    with open("/dev/shm/shared", "wb") as f:
        f.write(os.urandom(4 << 20))
    with open("/tmp/data", "wb") as f:
        f.write(os.urandom(8 << 20))
    print("wrote", os.path.getsize("/dev/shm/shared") + os.path.getsize("/tmp/data"))
    files = [open("/etc/hostname") for _ in range(200)]
    print("opened", len(files))
    libc = ctypes.CDLL(None, use_errno=True)
    fd = libc.inotify_init1(0)
    watch = libc.inotify_add_watch(fd, b"/tmp", 0x100) if fd >= 0 else -1
    print("inotify", "ok" if watch >= 0 else os.strerror(ctypes.get_errno()))
""")


def hostile(script: tuple[str, ...], image: str = "busybox", userns: str = "host",
            **limits) -> Sandbox:
    return Sandbox(SandboxSpec(image=image, command=script, userns=userns,
                               limits=Limits(timeout="5m", **limits)))


def wait_for(sandbox: Sandbox, text: bytes) -> None:
    """Until the sandbox printed ``text`` (it reached its limit) or ended."""
    import time

    deadline = time.monotonic() + HANG_GUARD
    while text not in sandbox.stdout + sandbox.stderr:
        try:
            sandbox.wait(0.2)
            return
        except TimeoutError:
            if time.monotonic() > deadline:
                pytest.fail(f"the hostile sandbox did not reach its limit: {sandbox.stderr[-500:]!r}")


def test_a_hostile_sandbox_beside_a_normal_one_takes_only_what_it_was_given():
    counts = check_per_user_counts()
    if not counts.ok:
        pytest.skip(f"{counts.detail} ({counts.fix})")
    shm = hostile(("sh", "-c", "head -c 1073741824 /dev/zero > /dev/shm/fill; echo survived"),
                  memory="48m")
    bomb = hostile(("sh", "-c", "f(){ f | f & }; f; echo bombed; sleep 600"), pids=64)
    fds = hostile(("python3", "-c", OPEN_FILES), image="host",
                  ulimits=(Ulimit("nofile", 256, 256), Ulimit("core", 0, 0)))
    disk = hostile(("sh", "-c", "dd if=/dev/zero of=/big bs=1M count=1024; echo full; sleep 600"),
                   disk="32m")
    hogs = {userns: hostile(("python3", "-c", INOTIFY), image="host", userns=userns,
                            ulimits=(Ulimit("nofile", INOTIFY_NOFILE, INOTIFY_NOFILE),))
            for userns in ("host", "auto")}
    with shm, bomb, fds, disk, hogs["host"], hogs["auto"]:
        for sandbox, text in ((shm, b"survived"), (bomb, b"bombed"), (fds, b"opened"),
                              (disk, b"full"), (hogs["host"], b"inotify"),
                              (hogs["auto"], b"inotify")):
            wait_for(sandbox, text)
        normal = run(SandboxSpec(image="host", command=("python3", "-c", NORMAL),
                                 limits=Limits(timeout="5m")), log_file=False)
        for sandbox in (bomb, fds, disk, *hogs.values()):
            sandbox.kill()
        ended = {name: sb.wait() for name, sb in
                 (("shm", shm), ("bomb", bomb), ("fds", fds), ("disk", disk),
                  ("inotify", hogs["host"]), ("inotify userns", hogs["auto"]))}
    assert (normal.exit_code, normal.stdout.decode().split("\n")) == (0, [
        "forked 32", f"wrote {12 * MiB}", "opened 200", "inotify ok", ""]), normal.stderr[-2000:]
    assert ended["shm"].oom_killed and b"survived" not in ended["shm"].stdout, ended["shm"].to_dict()
    assert ended["bomb"].pids_limited and ended["bomb"].pids_peak <= 64, ended["bomb"].to_dict()
    opened = ended["fds"].stdout.split()
    assert opened[0] == b"opened" and int(opened[1]) < 256 and b"Too many open files" in ended["fds"].stdout
    assert b"No space left on device" in ended["disk"].stderr, ended["disk"].to_dict()
    for name in ("inotify", "inotify userns"):
        took = ended[name].stdout.split()
        # stopped by its own nofile (less the few fds Python holds), not by a shared ceiling
        assert took[0] == b"inotify" and INOTIFY_NOFILE - 16 <= int(took[1]) < INOTIFY_NOFILE, (
            name, ended[name].to_dict())
        assert b"Too many open files" in ended[name].stdout, (name, ended[name].to_dict())


#: Makes POSIX message queues of the largest size a sandbox may (10 messages of 8 KiB)
#: until the kernel refuses, says how many, and holds them.
MESSAGE_QUEUES = textwrap.dedent("""
    import ctypes, os, time
    rt = ctypes.CDLL("librt.so.1", use_errno=True)
    class Attr(ctypes.Structure):
        _fields_ = [("flags", ctypes.c_long), ("maxmsg", ctypes.c_long),
                    ("msgsize", ctypes.c_long), ("curmsgs", ctypes.c_long),
                    ("reserved", ctypes.c_long * 4)]
    attr = Attr(0, 10, 8192, 0)
    made = 0
    while rt.mq_open(f"/hog{made}".encode(), os.O_CREAT | os.O_RDWR, 0o600,
                     ctypes.byref(attr)) >= 0:
        made += 1
    print("queues", made, os.strerror(ctypes.get_errno()), flush=True)
    time.sleep(600)
""")
#: One queue of the default size, as a program that uses them makes it.
ONE_QUEUE = textwrap.dedent("""
    import ctypes, os
    rt = ctypes.CDLL("librt.so.1", use_errno=True)
    made = rt.mq_open(b"/mine", os.O_CREAT | os.O_RDWR, 0o600, None) >= 0
    print("queue", "ok" if made else os.strerror(ctypes.get_errno()))
""")


@pytest.mark.parametrize("userns", ["auto", "host"])
def test_message_queues_are_a_users_own_only_in_a_user_namespace(userns):
    """The kernel counts POSIX message queues' bytes per user, against the creating
    process's RLIMIT_MSGQUEUE (800 KiB by default), which only CAP_SYS_RESOURCE can
    raise. A hog in a user namespace of its own (--userns=auto) fills its own count; one
    that is the host's root fills root's, and the next sandbox's mq_open fails until it
    ends: the limit README ("Resources stay contained") states, held here so that the
    README changes with it."""
    hog = hostile(("python3", "-c", MESSAGE_QUEUES), image="host", userns=userns)
    with hog:
        wait_for(hog, b"queues")
        normal = run(SandboxSpec(image="host", command=("python3", "-c", ONE_QUEUE)),
                     log_file=False)
        hog.kill()
        ended = hog.wait()
    made = ended.stdout.split()
    assert made[:2] != [b"queues", b"0"] and b"Too many open files" in ended.stdout, ended.to_dict()
    expected = "queue ok" if userns == "auto" else "queue Too many open files"
    assert (normal.exit_code, normal.stdout.decode().strip()) == (0, expected), normal.to_dict()
