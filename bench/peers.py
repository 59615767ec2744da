"""The peers the benchmarks run: bwrap and podman command lines, their cgroups, and RQ jobs.

Shared by bench/startup.py (one container per call) and bench/jobs.py, whose RQ
workers import this module to run the peer's container as a job
(``peers.bwrap_job``, ``peers.podman_job``: enqueued by name, JSON arguments).
"""

from __future__ import annotations

import os
import subprocess
import tarfile
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
