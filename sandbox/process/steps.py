"""The steps of a plan, performed in the container's first process.

Each step kind (``Op.kind``) is one small function taking the Kernel and the
step's arguments; ``run`` walks a list of steps and stops at the first
failure with StepFailed naming the step. What a process did ahead of its
plan (a spare's staged /proc, /dev and /sys, its ``lo``, its netlink socket)
is on the Kernel, so the same plan runs the same way on every start route.
"""

from __future__ import annotations

import errno
import os
import stat

from .. import linux, pseudofs
from ..linux import rtnetlink
from ..plan import Op
from ..securejoin import secure_join
from . import userns
from .kernel import Kernel

TYPE_CHECKING = False  # typing itself is not loaded: the zygote stays small

if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any


class StepFailed(Exception):
    """A step failed; carries the step's name and the original error."""

    def __init__(self, step: str, error: BaseException) -> None:
        super().__init__(f"{step}: {error}")
        self.step = step
        self.error = error


def in_step(step: str, action: Callable[..., Any], *args: object) -> Any:
    """Call ``action`` and return what it returns; any failure becomes StepFailed naming ``step``."""
    try:
        return action(*args)
    except StepFailed:
        raise  # it names the inner step already
    except Exception as exc:
        raise StepFailed(step, exc) from exc


def run(ops: tuple[Op, ...] | list[Op], kernel: Kernel) -> None:
    """Perform each step in order; the first failure raises StepFailed."""
    for op in ops:
        in_step(op.step, STEPS[op.kind], kernel, *op.args)
        kernel.mark(op.step)


def _mount(kernel: Kernel, source: str, dest: str, fstype: str | None, flags: int,
           data: str | None) -> None:
    kernel.mount(source, dest, fstype, flags, data)


def _propagation(kernel: Kernel, dest: str, flags: int) -> None:
    kernel.mount(None, dest, None, flags, None)


def _mkdirs(kernel: Kernel, *dirs: tuple[str, int]) -> None:
    for path, mode in dirs:
        kernel.mkdir(path, mode)


def _mknods(kernel: Kernel, *nodes: tuple[str, int, int, int]) -> None:
    for path, mode, major, minor in nodes:
        kernel.mknod(path, mode, major, minor)


def _symlinks(kernel: Kernel, *links: tuple[str, str]) -> None:
    for target, path in links:
        kernel.symlink(target, path)


def _bind(kernel: Kernel, source: str, root: str, dest: str, read_only: bool) -> None:
    """Bind a host path in, recursively; read-only all the way down when asked."""
    path = secure_join(root, dest)
    if os.path.isdir(source):
        kernel.makedirs(path)
    elif not os.path.exists(path):
        kernel.makedirs(os.path.dirname(path))
        kernel.touch(path)
    kernel.mount(source, path, None, linux.MS_BIND | linux.MS_REC, None)
    attrs = linux.MOUNT_ATTR_NOSUID | linux.MOUNT_ATTR_NODEV
    if read_only:
        attrs |= linux.MOUNT_ATTR_RDONLY
    kernel.mount_setattr(path, attrs, True)


def _mask(kernel: Kernel, path: str, null: str, empty_dir: str) -> None:
    """Hide a path: /dev/null over a file, an empty read-only directory over a dir."""
    try:
        st = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return
    if stat.S_ISDIR(st.st_mode):
        kernel.mount(empty_dir, path, None, linux.MS_BIND, None)
        kernel.mount_setattr(path, linux.MOUNT_ATTR_RDONLY | linux.MOUNT_ATTR_NOSUID
                             | linux.MOUNT_ATTR_NODEV | linux.MOUNT_ATTR_NOEXEC, False)
    else:
        kernel.mount(null, path, None, linux.MS_BIND, None)


def _readonly(kernel: Kernel, path: str) -> None:
    if not os.path.exists(path):
        return
    kernel.mount(path, path, None, linux.MS_BIND | linux.MS_REC, None)
    kernel.mount_setattr(path, linux.MOUNT_ATTR_RDONLY | linux.MOUNT_ATTR_NOSUID
                         | linux.MOUNT_ATTR_NODEV, True)


def _readonly_mount(kernel: Kernel, path: str) -> None:
    """The mount at ``path`` read-only, the mounts below it as they are."""
    kernel.mount_setattr(path, linux.MOUNT_ATTR_RDONLY | linux.MOUNT_ATTR_NOSUID
                         | linux.MOUNT_ATTR_NODEV | linux.MOUNT_ATTR_NOEXEC, False)


def _pivot_root(kernel: Kernel, root: str) -> None:
    """pivot_root(".", ".") then detach the old root (as runc does)."""
    kernel.chdir(root)
    kernel.pivot_root(".", ".")
    kernel.umount(".", linux.MNT_DETACH)
    kernel.chdir("/")


#: overlay(2) options beyond the dirs: an upper dir must never hold a rename redirect or
#: a metadata-only copy, so it can be packed as a layer (``images.pack``).
OVERLAY_OPTIONS = (("redirect_dir", "off"), ("metacopy", "off"))
#: mount(2) takes its options in one page; past this, fsconfig(lowerdir+) is used.
MOUNT_DATA_MAX = 4000


def _overlay(kernel: Kernel, root: str, path: str, lowers: tuple[str, ...], upper: str,
             work: str, flags: int, hold: str | None, links_base: str | None) -> None:
    """Mount an overlay at ``path`` in ``root``: one mount(2) while its options fit a page,
    else fsconfig(lowerdir+); ``links_base``: the lowers are short links relative to it.

    ``hold``: a directory the init keeps open (``Kernel.held_layer``), the
    writable layer's, so `sandbox commit` can read it through /proc/<init>/fd
    after pivot_root detached it from every path.
    """
    target = root if path == "/" else secure_join(root, path)
    if path != "/":
        kernel.makedirs(target)
    options = ",".join(f"{k}={v}" for k, v in OVERLAY_OPTIONS)
    data = f"lowerdir={':'.join(lowers)},upperdir={upper},workdir={work},{options}"
    _mount_overlay(kernel, target, lowers, upper, work, flags, links_base, data)
    if hold is not None:
        kernel.held_layer = kernel.open(hold, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)


def _mount_overlay(kernel: Kernel, target: str, lowers: tuple[str, ...], upper: str, work: str,
                   flags: int, links_base: str | None, data: str) -> None:
    if links_base is not None:
        kernel.chdir(links_base)
        try:
            kernel.mount("overlay", target, "overlay", flags, data)
        finally:
            kernel.chdir("/")
    elif len(data) < MOUNT_DATA_MAX:
        kernel.mount("overlay", target, "overlay", flags, data)
    else:
        kernel.mount_overlay(target, lowers, upper, work, OVERLAY_OPTIONS, flags)


def _hostname(kernel: Kernel, name: str) -> None:
    kernel.sethostname(name)


def _loopback(kernel: Kernel) -> None:
    if not kernel.loopback_is_up:
        kernel.loopback_up()


def stage_pseudo_fs(kernel: Kernel, staging: str) -> None:
    """In a spare, before its plan: make the pseudo filesystems under ``staging``.

    A tmpfs over ``staging`` (an empty host directory) in this mount
    namespace only: the spare's root is a slave of the host's, so nothing
    made here reaches the host. If anything fails, the plan's step makes
    them in place as for a fresh fork.
    """
    try:
        kernel.mount("sandbox-staging", staging, "tmpfs", linux.MS_NOSUID | linux.MS_NODEV,
                     "mode=0700,size=64k")
        _mkdirs(kernel, *((f"{staging}/{name}", 0o555)
                          for name in (*pseudofs.MOUNT_POINTS, "empty")))
        run(pseudofs.pseudo_fs_ops(staging, f"{staging}/empty"), kernel)
    except (OSError, StepFailed):
        return
    kernel.staged = staging


def _pseudo_fs(kernel: Kernel, root: str, empty_dir: str) -> None:
    """/proc, /dev and /sys under root: moved in when staged ahead, else made in place."""
    if kernel.staged is None:
        run(pseudofs.pseudo_fs_ops(root, empty_dir), kernel)
        return
    for name in pseudofs.MOUNT_POINTS:
        kernel.mount(f"{kernel.staged}/{name}", f"{root}/{name}", None, linux.MS_MOVE, None)


def _host_netlink(kernel: Kernel) -> None:
    kernel.open_host_netlink()


def _plug(kernel: Kernel, interface: str, veth: bytes, address: bytes, up: bytes,
          route: bytes, isolate: bytes | None = None) -> None:
    """Make the veth pair from the host's side (and isolate its bridge port when the
    network is isolated), then configure ``interface`` from inside.

    The requests were encoded by the parent (``sandbox.network.requests``);
    the veth request puts the peer, ``interface``, into the namespace of
    pid 1: this process. The port is isolated before ``interface`` comes up,
    so no frame crosses it before.
    """
    host, kernel.host_netlink = kernel.host_netlink, None
    if host is None:
        raise OSError(errno.EBADF, "no netlink socket in the host's network namespace")
    try:
        kernel.netlink_request(host, veth, "create the veth pair")
        if isolate is not None:
            kernel.netlink_request(host, isolate, "isolate the bridge port")
    finally:
        host.close()
    index = kernel.interface_index(interface)
    with kernel.netlink_socket() as sock:
        kernel.netlink_request(sock, rtnetlink.with_index(address, index),
                               f"add the address to {interface}")
        kernel.netlink_request(sock, rtnetlink.with_index(up, index), f"bring {interface} up")
        kernel.netlink_request(sock, route, "add the default route")


def _makedirs(kernel: Kernel, path: str) -> None:
    """mkdir -p inside the container (after pivot_root, so links stay inside)."""
    kernel.makedirs(path)


STEPS: dict[str, Callable[..., Any]] = {
    "mount": _mount, "propagation": _propagation, "mkdirs": _mkdirs, "mknods": _mknods,
    "symlinks": _symlinks, "bind": _bind, "mask": _mask, "readonly": _readonly,
    "readonly_mount": _readonly_mount,
    "pivot_root": _pivot_root, "hostname": _hostname, "loopback_up": _loopback,
    "makedirs": _makedirs, "pseudo_fs": _pseudo_fs, "host_netlink": _host_netlink,
    "plug": _plug, "overlay": _overlay, **userns.STEPS,
}
