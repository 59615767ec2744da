"""A hostile sandbox exhausts what it is given, and the sandbox beside it still does its work.

The hostile ones, all at once: one fills /dev/shm (which counts against its
memory, so it is OOM-killed), one fork-bombs (its pids limit), one opens
files until its nofile rlimit says no and holds them, one writes until its
--disk says no space, one (in a user namespace of its own) takes inotify
instances until the kernel says no and holds them. While they hold what
they took, a normal sandbox
forks, writes to /dev/shm and to its disk, opens files and watches a file
with inotify, and finishes its work. (No assertion on time: the normal
sandbox ending with all its work done, and each hostile one stopped by its
own limit, is the claim.)

inotify instances are counted per user of the host (fs.inotify.max_user_instances,
128 by default): a sandbox in the host's user namespace is root there and can take
every instance root has, from the other sandboxes and from the host's own root
processes. Only a user namespace of its own (``userns="auto"``: root inside is an
unprivileged id of the host) makes them its own; so the inotify hog here runs in one.
"""

from __future__ import annotations

import textwrap

import pytest

from sandbox import Limits, Sandbox, SandboxSpec, Ulimit, run

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

#: Takes inotify instances until the kernel refuses, says how many, and holds them.
INOTIFY = textwrap.dedent("""
    import ctypes, os, time
    libc = ctypes.CDLL(None, use_errno=True)
    held = []
    while (fd := libc.inotify_init1(0)) >= 0:
        held.append(fd)
    print("inotify", len(held), os.strerror(ctypes.get_errno()), flush=True)
    time.sleep(600)
""")

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
    shm = hostile(("sh", "-c", "head -c 1073741824 /dev/zero > /dev/shm/fill; echo survived"),
                  memory="48m")
    bomb = hostile(("sh", "-c", "f(){ f | f & }; f; echo bombed; sleep 600"), pids=64)
    fds = hostile(("python3", "-c", OPEN_FILES), image="host",
                  ulimits=(Ulimit("nofile", 256, 256), Ulimit("core", 0, 0)))
    disk = hostile(("sh", "-c", "dd if=/dev/zero of=/big bs=1M count=1024; echo full; sleep 600"),
                   disk="32m")
    inotify = hostile(("python3", "-c", INOTIFY), image="host", userns="auto")
    with shm, bomb, fds, disk, inotify:
        for sandbox, text in ((shm, b"survived"), (bomb, b"bombed"), (fds, b"opened"),
                              (disk, b"full"), (inotify, b"inotify")):
            wait_for(sandbox, text)
        normal = run(SandboxSpec(image="host", command=("python3", "-c", NORMAL),
                                 limits=Limits(timeout="5m")), log_file=False)
        for sandbox in (bomb, fds, disk, inotify):
            sandbox.kill()
        ended = {name: sb.wait() for name, sb in
                 (("shm", shm), ("bomb", bomb), ("fds", fds), ("disk", disk), ("inotify", inotify))}
    assert (normal.exit_code, normal.stdout.decode().split("\n")) == (0, [
        "forked 32", f"wrote {12 * MiB}", "opened 200", "inotify ok", ""]), normal.stderr[-2000:]
    assert ended["shm"].oom_killed and b"survived" not in ended["shm"].stdout, ended["shm"].to_dict()
    assert ended["bomb"].pids_limited and ended["bomb"].pids_peak <= 64, ended["bomb"].to_dict()
    opened = ended["fds"].stdout.split()
    assert opened[0] == b"opened" and int(opened[1]) < 256 and b"Too many open files" in ended["fds"].stdout
    assert b"No space left on device" in ended["disk"].stderr, ended["disk"].to_dict()
    took = ended["inotify"].stdout.split()
    assert took[0] == b"inotify" and int(took[1]) > 0 and b"Too many open files" in ended["inotify"].stdout
