"""The peers the benchmarks run: bwrap and podman command lines, their cgroups, and RQ jobs.

Shared by bench/startup.py (one container per call) and bench/jobs.py, whose RQ
workers import this module to run the peer's container as a job
(``peers.bwrap_job``, ``peers.podman_job``: enqueued by name, JSON arguments).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import subprocess
import tarfile
import tempfile
import threading
import time
from pathlib import Path

#: Without CAP_SYS_RESOURCE podman's default rlimits (nofile, nproc) cannot be set: lower them.
PODMAN_RUN = ["--runtime", "runc", "run", "--rm", "--network", "none",
              "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"]
#: cgroups the peers make and may leave behind (runc: one per id; podman: libpod_parent/conmon)
PEER_CGROUPS = ("bench-", "libpod_parent")


def bwrap_command(rootfs: str, *command: str) -> list[str]:
    """bwrap with every namespace, the rootfs read-only, /proc, /dev and /tmp: no cgroup, no limit."""
    return ["bwrap", "--unshare-all", "--die-with-parent", "--ro-bind", rootfs, "/",
            "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", *(command or ("true",))]


def podman_command(image: str, *command: str) -> list[str]:
    return ["podman", *PODMAN_RUN, image, *(command or ("true",))]


def podman_image(rootfs: str, cleanup: list[list[str]], tmp: Path) -> str:
    """Import the rootfs as a podman image, removed at the end (its rmi registered first)."""
    tarball = tmp / "busybox.tar"
    with tarfile.open(tarball, "w") as tar:
        tar.add(rootfs, arcname=".")
    name = f"localhost/sandbox-bench-busybox:{os.getpid()}"
    cleanup.append(["podman", "rmi", "--force", name])
    subprocess.run(["podman", "import", str(tarball), name], check=True, capture_output=True)
    return name


def bwrap_job(rootfs: str) -> str:
    """An RQ job: `echo hi` in bwrap; its output (RQ keeps it as the job's result)."""
    return _run(bwrap_command(rootfs, "sh", "-c", "echo hi"))


def bwrap_full_job(rootfs: str, url: str) -> str:
    """An RQ job: `echo hi` in bwrap with what ours keeps, each done the cheapest way by hand.

    What the issue's target asks ours to have on, and no more: a job record
    (a hash: running, then the verdict), a live log (a stream: the step's
    start, each chunk of output as it is read, the end, the eof; writes
    that go together pipelined), limits (a memory cgroup, swap off, and a
    pids cgroup: made, joined, removed; the worker joins them just long
    enough to spawn bwrap, so no Python runs between fork and exec), and a
    writable overlay root (a size-limited tmpfs upper over the rootfs,
    unmounted after). No seccomp filter, no freezer or accounting cgroup,
    no workspace, no image lookup: a floor for any implementation that has
    those four on, with bwrap as its container.
    """
    from rq import get_current_job

    job_id = get_current_job().id
    conn = _redis(url)
    record, stream = f"bench:full:{job_id}", f"bench:full:{job_id}:log"
    pipe = conn.pipeline(transaction=False)
    pipe.hset(record, mapping={"status": "running", "started_at": time.time()})
    pipe.xadd(stream, {"kind": "step", "step": "echo"})
    pipe.execute()
    cgroups = _peer_cgroup(job_id, memory=1 << 30, pids=4096)
    top = tempfile.mkdtemp(prefix="bench-full-")
    merged = os.path.join(top, "root")
    status, shown, mounted = "failed", 0, []
    try:
        _mount("tmpfs", top, "tmpfs", 0, "size=1g")
        mounted.append(top)
        for name in ("upper", "work", "root"):
            os.mkdir(os.path.join(top, name))
        _mount("overlay", merged, "overlay", 0,
               f"lowerdir={rootfs},upperdir={top}/upper,workdir={top}/work")
        mounted.append(merged)
        argv = ["bwrap", "--unshare-all", "--die-with-parent", "--bind", merged, "/",
                "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "sh", "-c", "echo hi"]
        with _joined(cgroups):
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT)
        assert proc.stdout is not None
        for chunk in iter(lambda: os.read(proc.stdout.fileno(), 65536), b""):
            if shown < OUTPUT_LIMIT:
                shown += len(chunk)
                conn.xadd(stream, {"kind": "out", "data": chunk})
        proc.stdout.close()
        status = "passed" if proc.wait(600) == 0 else "failed"
    finally:
        for path in reversed(mounted):
            _umount(path)
        os.rmdir(top)
        for path in cgroups:
            _rmdir_cgroup(path)
        pipe = conn.pipeline(transaction=False)
        pipe.xadd(stream, {"kind": "end", "step": "echo", "status": status})
        pipe.xadd(stream, {"kind": "eof"})
        pipe.hset(record, mapping={"status": status, "ended_at": time.time()})
        pipe.expire(record, 600)
        pipe.expire(stream, 600)
        pipe.execute()
    return status


OUTPUT_LIMIT = 16 << 20
_LIBC = ctypes.CDLL(None, use_errno=True)
_REDIS: dict[str, object] = {}


def _redis(url: str):
    if url not in _REDIS:
        from redis import Redis

        _REDIS[url] = Redis.from_url(url)
    return _REDIS[url]


def _mount(source: str, target: str, fstype: str, flags: int, data: str) -> None:
    if _LIBC.mount(source.encode(), target.encode(), fstype.encode(), flags, data.encode()) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), target)


def _umount(target: str) -> None:
    if _LIBC.umount2(target.encode(), 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), target)


def _peer_cgroup(name: str, *, memory: int, pids: int) -> list[str]:
    """A memory cgroup (swap off) and a pids cgroup for one job: v1 here, v2 where unified."""
    if os.path.exists("/sys/fs/cgroup/cgroup.controllers"):  # v2
        path = f"/sys/fs/cgroup/bench-full-{name}"
        os.mkdir(path)
        for file, value in (("memory.max", memory), ("memory.swap.max", 0), ("pids.max", pids)):
            if os.path.exists(os.path.join(path, file)):  # no swap.max without swap accounting
                Path(path, file).write_text(str(value))
        return [path]
    memory_cg, pids_cg = f"/sys/fs/cgroup/memory/bench-full-{name}", f"/sys/fs/cgroup/pids/bench-full-{name}"
    os.mkdir(memory_cg)
    os.mkdir(pids_cg)
    Path(memory_cg, "memory.limit_in_bytes").write_text(str(memory))
    if os.path.exists(os.path.join(memory_cg, "memory.memsw.limit_in_bytes")):
        Path(memory_cg, "memory.memsw.limit_in_bytes").write_text(str(memory))
    Path(pids_cg, "pids.max").write_text(str(pids))
    return [memory_cg, pids_cg]


def _rmdir_cgroup(path: str) -> None:
    """rmdir, waiting out the moment the kernel takes to release the tasks that exited (as
    sandbox.cgroups does: EBUSY for a few ms)."""
    for _ in range(5000):
        try:
            os.rmdir(path)
            return
        except OSError as exc:
            if exc.errno != errno.EBUSY:
                raise
            time.sleep(0.002)
    os.rmdir(path)


@contextlib.contextmanager
def _joined(cgroups: list[str]):
    """This thread in ``cgroups`` (what it spawns starts there), then back where it was."""
    v2 = len(cgroups) == 1 and os.path.exists("/sys/fs/cgroup/cgroup.controllers")
    me = str(os.getpid() if v2 else threading.get_native_id())
    here = {}
    for line in Path("/proc/thread-self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        for controller in controllers.split(",") if controllers else [""]:
            here[controller] = path
    back = []
    for path in cgroups:
        controller = "" if v2 else os.path.basename(os.path.dirname(path))
        mount = os.path.dirname(path)
        back.append(os.path.join(mount, here[controller].lstrip("/")))
        Path(path, "cgroup.procs" if v2 else "tasks").write_text(me)
    try:
        yield
    finally:
        for path in back:
            Path(path, "cgroup.procs" if v2 else "tasks").write_text(me)


def podman_job(image: str) -> str:
    """An RQ job: `echo hi` in `podman run --rm`; its output."""
    return _run(podman_command(image, "sh", "-c", "echo hi"))


def _run(argv: list[str]) -> str:
    proc = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{argv[0]} exited {proc.returncode}: {proc.stderr.strip()[-500:]}")
    return proc.stdout


def peer_cgroups() -> set[str]:
    found = set()
    for mount in Path("/sys/fs/cgroup").iterdir():
        for top in mount.glob("*"):
            if top.is_dir() and top.name.startswith(PEER_CGROUPS):
                found |= {str(top), *(str(d) for d in top.rglob("*") if d.is_dir())}
    return found


def remove_peer_cgroups(before: set[str]) -> None:
    """rmdir (never kill) the peers' cgroups that this run made, deepest first."""
    for path in sorted(peer_cgroups() - before, key=len, reverse=True):
        try:
            os.rmdir(path)
        except OSError:
            pass
