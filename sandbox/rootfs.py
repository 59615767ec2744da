"""The container's root filesystem, as a list of setup steps.

An overlay whose lower layers are the image's and whose upper layer lives on
a tmpfs (size = the disk limit) mounted over the sandbox's state directory in
the container's own mount namespace, so it is thrown away by the kernel when
that namespace dies, even after SIGKILL, and costs the host disk nothing.
The container's /tmp lives on the same tmpfs, so one disk limit covers both.
tmpfs pages are memory: what the container writes counts against --memory.
Then /proc (with runc's default masked and read-only paths), a
minimal /dev with devpts, read-only /sys, tmpfs /tmp, the image's and the
spec's bind mounts, and pivot_root with the old root detached.

Everything is mounted after the root has been made private (MS_REC|MS_PRIVATE),
so no mount is ever copied into another namespace.
"""

from __future__ import annotations

from .images import Image
from .linux import (MS_BIND, MS_NODEV, MS_NOEXEC, MS_NOSUID, MS_PRIVATE, MS_RDONLY, MS_REC)
from .plan import Op
from .spec import SandboxSpec

#: runc's default masked paths: hidden behind /dev/null (files) or an empty,
#: read-only directory (dirs; a bind is cheaper than a tmpfs per path).
MASKED_PATHS = (
    "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
    "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
    "/sys/firmware", "/sys/devices/virtual/powercap",
)
#: runc's default read-only paths.
READONLY_PATHS = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")

#: (name, mode, major, minor) of the device nodes in the container's /dev.
DEVICES = (
    ("null", 0o666, 1, 3), ("zero", 0o666, 1, 5), ("full", 0o666, 1, 7),
    ("random", 0o666, 1, 8), ("urandom", 0o666, 1, 9), ("tty", 0o666, 5, 0),
)
DEV_LINKS = (
    ("/proc/self/fd", "fd"), ("/proc/self/fd/0", "stdin"), ("/proc/self/fd/1", "stdout"),
    ("/proc/self/fd/2", "stderr"), ("pts/ptmx", "ptmx"),
)


def rootfs_ops(spec: SandboxSpec, image: Image, state_path: str) -> list[Op]:
    """The mount steps for one sandbox, in order, ending with pivot_root."""
    layer = state_path
    root = f"{layer}/root"
    disk = spec.limits.disk
    size = f",size={disk}" if disk else ""
    ops = [
        Op("propagation", ("/", MS_REC | MS_PRIVATE), "make / private"),
        Op("mount", ("sandbox-layer", layer, "tmpfs", MS_NOSUID | MS_NODEV, f"mode=0700{size}"),
           "mount the writable layer (tmpfs)"),
        Op("mkdirs", ((f"{layer}/upper", 0o755), (f"{layer}/work", 0o700), (root, 0o755),
                      (f"{layer}/tmp", 0o1777), (f"{layer}/empty", 0o555)), "make overlay dirs"),
        Op("mount", ("overlay", root, "overlay", 0,
                     f"lowerdir={':'.join(image.layers)},upperdir={layer}/upper,"
                     f"workdir={layer}/work"), f"mount the {image.name} image (overlay)"),
    ]
    ops += _pseudo_fs_ops(root)
    ops.append(Op("mount", (f"{layer}/tmp", f"{root}/tmp", None, MS_BIND, None), "mount /tmp"))
    # after /tmp, so that a host path under /tmp (a checkout there) is not hidden by it
    for bind in image.binds:
        ops.append(Op("bind", (bind.source, root, bind.target, True),
                      f"bind {bind.source} (image {image.name})"))
    for mount in spec.mounts:
        ops.append(Op("bind", (mount.source, root, mount.target, mount.read_only),
                      f"bind mount {mount.source}:{mount.target}"))
    for path in MASKED_PATHS:
        ops.append(Op("mask", (f"{root}{path}", f"{root}/dev/null", f"{layer}/empty"),
                      f"mask {path}"))
    for path in READONLY_PATHS:
        ops.append(Op("readonly", (f"{root}{path}",), f"make {path} read-only"))
    ops.append(Op("pivot_root", (root,), "pivot_root"))
    return ops


def _pseudo_fs_ops(root: str) -> list[Op]:
    secure = MS_NOSUID | MS_NODEV | MS_NOEXEC
    dev = f"{root}/dev"
    ops = [
        Op("mkdirs", ((f"{root}/proc", 0o555), (f"{root}/sys", 0o555), (dev, 0o755),
                      (f"{root}/tmp", 0o1777)), "make mount points"),
        Op("mount", ("proc", f"{root}/proc", "proc", secure, None), "mount /proc"),
        Op("mount", ("tmpfs", dev, "tmpfs", MS_NOSUID | MS_NOEXEC, "mode=755,size=65536k"),
           "mount /dev"),
        Op("mknods", tuple((f"{dev}/{n}", mode, ma, mi) for n, mode, ma, mi in DEVICES),
           "make device nodes"),
        Op("mkdirs", ((f"{dev}/pts", 0o755), (f"{dev}/shm", 0o1777)), "make /dev/pts and /dev/shm"),
        Op("mount", ("devpts", f"{dev}/pts", "devpts", MS_NOSUID | MS_NOEXEC,
                     "newinstance,ptmxmode=0666,mode=0620"), "mount /dev/pts"),
        Op("mount", ("shm", f"{dev}/shm", "tmpfs", secure, "mode=1777,size=65536k"), "mount /dev/shm"),
        Op("symlinks", tuple((target, f"{dev}/{name}") for target, name in DEV_LINKS),
           "make /dev links"),
        Op("mount", ("sysfs", f"{root}/sys", "sysfs", secure | MS_RDONLY, None), "mount /sys"),
    ]
    return ops


__all__ = ["rootfs_ops", "MASKED_PATHS", "READONLY_PATHS", "DEVICES"]
