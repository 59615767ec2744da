"""The container's /proc, /dev and /sys, as setup steps: the same for every sandbox.

/proc with runc's default masked and read-only paths, a minimal /dev (device
nodes, devpts, shm, the usual links) and a read-only /sys. Because nothing
here depends on the spec, a spare (``process.spare``) makes them ahead, while
it waits for a plan, in a staging tmpfs of its own mount namespace; the plan's
``pseudo_fs`` step then only moves the three mounts into the new root. Kept
apart from ``rootfs`` so the zygote loads no more than this.
"""

from __future__ import annotations

from .linux import MS_NODEV, MS_NOEXEC, MS_NOSUID, MS_RDONLY
from .plan import Op

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

#: The directories under a root that the pseudo filesystems are mounted on.
MOUNT_POINTS = ("proc", "dev", "sys")


def mount_ops(root: str) -> list[Op]:
    """Mount /proc, /dev (with its nodes, pts, shm and links) and /sys under root."""
    secure = MS_NOSUID | MS_NODEV | MS_NOEXEC
    dev = f"{root}/dev"
    return [
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


def protect_ops(root: str, empty_dir: str) -> list[Op]:
    """Mask and make read-only what runc does, under root (``empty_dir``: an empty directory)."""
    ops = [Op("mask", (f"{root}{path}", f"{root}/dev/null", empty_dir), f"mask {path}")
           for path in MASKED_PATHS]
    ops += [Op("readonly", (f"{root}{path}",), f"make {path} read-only") for path in READONLY_PATHS]
    return ops


def pseudo_fs_ops(root: str, empty_dir: str) -> list[Op]:
    """Everything the ``pseudo_fs`` step does when nothing was staged."""
    return mount_ops(root) + protect_ops(root, empty_dir)
