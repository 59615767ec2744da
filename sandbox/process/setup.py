"""The executor: performs a plan's steps in the container's first process.

Each step kind is one small function; ``run_ops`` walks the list and stops at
the first failure, raising StepFailed with the step's name. ``sys`` is the
kernel seam (``sandbox.linux`` in production, a recorder in unit tests).
"""

from __future__ import annotations

import errno
import fcntl
import os
import socket
import stat
import time

TYPE_CHECKING = False  # typing itself is not loaded: the zygote stays small
if TYPE_CHECKING:
    from typing import Any, Callable

from .. import linux, pseudofs
from ..linux import netlink as wire
from ..plan import Op


class StepFailed(Exception):
    """A plan step failed; carries the step name and the original error."""

    def __init__(self, step: str, error: BaseException) -> None:
        super().__init__(f"{step}: {error}")
        self.step = step
        self.error = error


def secure_join(root: str, path: str) -> str:
    """``root/path`` with every symlink resolved as if root were ``/``.

    A path inside an image must never lead out of it through a symlink such
    as ``/work -> /etc``; this resolves links by hand, clamped at root.
    """
    parts = [p for p in path.split("/") if p and p != "."]
    resolved: list[str] = []
    hops = 0
    while parts:
        part = parts.pop(0)
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        candidate = os.path.join(root, *resolved, part)
        try:
            st = os.lstat(candidate)
        except FileNotFoundError:
            resolved.append(part)
            continue
        if stat.S_ISLNK(st.st_mode):
            hops += 1
            if hops > 40:
                raise OSError(40, "too many levels of symbolic links", path)
            target = os.readlink(candidate)
            if target.startswith("/"):
                resolved = []
            parts = [p for p in target.split("/") if p and p != "."] + parts
            continue
        resolved.append(part)
    return os.path.join(root, *resolved) if resolved else root


def _mount(sys: Any, source: str, target: str, fstype: str | None, flags: int, data: str | None) -> None:
    sys.mount(source, target, fstype, flags, data)


def _propagation(sys: Any, target: str, flags: int) -> None:
    sys.mount(None, target, None, flags, None)


def _mkdirs(sys: Any, *dirs: tuple[str, int]) -> None:
    for path, mode in dirs:
        try:
            os.mkdir(path, mode)
        except FileExistsError:
            continue
        os.chmod(path, mode)


def _mknods(sys: Any, *nodes: tuple[str, int, int, int]) -> None:
    for path, mode, major, minor in nodes:
        os.mknod(path, stat.S_IFCHR | mode, os.makedev(major, minor))
        os.chmod(path, mode)


def _symlinks(sys: Any, *links: tuple[str, str]) -> None:
    for target, path in links:
        os.symlink(target, path)


def _bind(sys: Any, source: str, root: str, target: str, read_only: bool) -> None:
    """Bind a host path in, recursively; read-only all the way down when asked."""
    dest = secure_join(root, target)
    if os.path.isdir(source):
        os.makedirs(dest, exist_ok=True)
    elif not os.path.exists(dest):
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        with open(dest, "a"):
            pass
    sys.mount(source, dest, None, linux.MS_BIND | linux.MS_REC, None)
    attrs = linux.MOUNT_ATTR_NOSUID | linux.MOUNT_ATTR_NODEV
    if read_only:
        attrs |= linux.MOUNT_ATTR_RDONLY
    sys.mount_setattr(dest, attrs, True)


def _mask(sys: Any, path: str, null: str, empty_dir: str) -> None:
    """Hide a path: /dev/null over a file, an empty read-only directory over a dir."""
    try:
        st = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return
    if stat.S_ISDIR(st.st_mode):
        sys.mount(empty_dir, path, None, linux.MS_BIND, None)
        sys.mount_setattr(path, linux.MOUNT_ATTR_RDONLY | linux.MOUNT_ATTR_NOSUID
                          | linux.MOUNT_ATTR_NODEV | linux.MOUNT_ATTR_NOEXEC, False)
    else:
        sys.mount(null, path, None, linux.MS_BIND, None)


def _readonly(sys: Any, path: str) -> None:
    if not os.path.exists(path):
        return
    sys.mount(path, path, None, linux.MS_BIND | linux.MS_REC, None)
    sys.mount_setattr(path, linux.MOUNT_ATTR_RDONLY | linux.MOUNT_ATTR_NOSUID
                      | linux.MOUNT_ATTR_NODEV, True)


def _pivot_root(sys: Any, root: str) -> None:
    """pivot_root(".", ".") then detach the old root (as runc does)."""
    os.chdir(root)
    sys.pivot_root(".", ".")
    sys.umount(".", linux.MNT_DETACH)
    os.chdir("/")


#: overlay(2) options beyond the dirs: an upper dir must never hold a rename redirect or
#: a metadata-only copy, so it can be packed as a layer (``images.pack``).
OVERLAY_OPTIONS = (("redirect_dir", "off"), ("metacopy", "off"))
#: An O_PATH fd on the writable layer's dir, held by the init for `sandbox commit`.
HELD_LAYER = -1


def _overlay(sys: Any, root: str, path: str, lowers: tuple[str, ...], upper: str, work: str,
             flags: int, hold: bool, links_base: str | None) -> None:
    """Mount an overlay at ``path`` in ``root``: one mount(2) while its options fit a page,
    else fsconfig(lowerdir+); ``links_base``: the lowers are short links relative to it.

    With ``hold``, the init keeps the upper dir's parent open, so `sandbox commit`
    can read it through /proc/<init>/fd after pivot_root detached it from every path.
    """
    target = root if path == "/" else secure_join(root, path)
    if path != "/":
        os.makedirs(target, exist_ok=True)
    options = ",".join(f"{k}={v}" for k, v in OVERLAY_OPTIONS)
    data = f"lowerdir={':'.join(lowers)},upperdir={upper},workdir={work},{options}"
    if links_base is not None:
        os.chdir(links_base)
        try:
            sys.mount("overlay", target, "overlay", flags, data)
        finally:
            os.chdir("/")
    elif len(data) < 4000:
        sys.mount("overlay", target, "overlay", flags, data)
    else:
        sys.mount_overlay(target, lowers, upper, work, OVERLAY_OPTIONS, flags)
    if hold:
        global HELD_LAYER
        HELD_LAYER = os.open(os.path.dirname(upper), os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)


def _hostname(sys: Any, name: str) -> None:
    sys.sethostname(name)


#: Set by a spare that brought ``lo`` up in its new network namespace while it
#: waited for a plan: the step then has nothing left to do.
LOOPBACK_UP = False


def _loopback(sys: Any) -> None:
    if not LOOPBACK_UP:
        sys.loopback_up()


#: Where a spare mounted /proc, /dev and /sys ahead (``stage_pseudo_fs``), or None.
STAGED: str | None = None


def stage_pseudo_fs(staging: str) -> None:
    """In a spare, before its plan: make the pseudo filesystems under ``staging``.

    A tmpfs over ``staging`` (an empty host directory) in this mount
    namespace only: the spare's root is a slave of the host's, so nothing
    made here reaches the host. If anything fails, the plan's step makes
    them in place as for a fresh fork.
    """
    global STAGED
    try:
        linux.mount("sandbox-staging", staging, "tmpfs", linux.MS_NOSUID | linux.MS_NODEV,
                    "mode=0700,size=64k")
        for name in (*pseudofs.MOUNT_POINTS, "empty"):
            os.mkdir(f"{staging}/{name}", 0o555)
        run_ops(pseudofs.pseudo_fs_ops(staging, f"{staging}/empty"))
    except (OSError, StepFailed):
        return
    STAGED = staging


def _pseudo_fs(sys: Any, root: str, empty_dir: str) -> None:
    """/proc, /dev and /sys under root: moved in when staged, else made in place."""
    if STAGED is None or sys is not linux:
        run_ops(pseudofs.pseudo_fs_ops(root, empty_dir), sys)
        return
    for name in pseudofs.MOUNT_POINTS:
        sys.mount(f"{STAGED}/{name}", f"{root}/{name}", None, linux.MS_MOVE, None)


#: A NETLINK_ROUTE socket in the host's network namespace, opened before unshare
#: (the ``host_netlink`` step, or a spare ahead) for a bridge's veth request.
HOST_NETLINK: socket.socket | None = None


def open_host_netlink() -> None:
    """Open HOST_NETLINK here, on an fd above 3 (0-3 become stdio and the status pipe)."""
    global HOST_NETLINK
    if HOST_NETLINK is None:
        sock = wire.open_socket()
        if sock.fileno() <= 3:
            high = fcntl.fcntl(sock.fileno(), fcntl.F_DUPFD_CLOEXEC, 4)
            sock.close()
            sock = socket.socket(fileno=high)
        HOST_NETLINK = sock


def close_host_netlink() -> None:
    global HOST_NETLINK
    if HOST_NETLINK is not None:
        HOST_NETLINK.close()
        HOST_NETLINK = None


def held_fds() -> tuple[int, ...]:
    """The fds the setup holds across steps (kept when the fds are arranged)."""
    return (HOST_NETLINK.fileno(),) if HOST_NETLINK is not None else ()


def _host_netlink(sys: Any) -> None:
    open_host_netlink()


def _plug(sys: Any, veth: bytes, address: bytes, up: bytes, route: bytes) -> None:
    """Make the veth pair from the host's side, then configure eth0 from inside.

    The requests were encoded by the parent (``sandbox.network.netlink``); the
    veth request puts the peer, eth0, into the namespace of pid 1: this process.
    """
    global HOST_NETLINK
    host, HOST_NETLINK = HOST_NETLINK, None
    if host is None:
        raise OSError(errno.EBADF, "no netlink socket in the host's network namespace")
    try:
        wire.request(host, veth, "create the veth pair")
    finally:
        host.close()
    index = socket.if_nametoindex("eth0")
    with wire.open_socket() as sock:
        wire.request(sock, wire.with_index(address, index), "add the address to eth0")
        wire.request(sock, wire.with_index(up, index), "bring eth0 up")
        wire.request(sock, route, "add the default route")


def _write_file(sys: Any, path: str, data: str) -> None:
    """Write a file inside the container (after pivot): /etc/hosts and the like."""
    with open(secure_join("/", path), "w") as f:
        f.write(data)


def _makedirs(sys: Any, path: str) -> None:
    """mkdir -p inside the container (after pivot_root, so links stay inside)."""
    os.makedirs(path, exist_ok=True)


def _call(sys: Any, target: str, *args: Any) -> None:
    """Call a plain function by dotted name: the seam for extension steps."""
    module_name, _, func_name = target.rpartition(".")
    module = __import__(module_name, fromlist=[func_name])
    getattr(module, func_name)(*args)


OPS: dict[str, Callable[..., None]] = {
    "mount": _mount, "propagation": _propagation, "mkdirs": _mkdirs, "mknods": _mknods,
    "symlinks": _symlinks, "bind": _bind, "mask": _mask, "readonly": _readonly,
    "pivot_root": _pivot_root, "hostname": _hostname, "loopback_up": _loopback,
    "write_file": _write_file, "makedirs": _makedirs, "call": _call, "pseudo_fs": _pseudo_fs,
    "host_netlink": _host_netlink, "plug": _plug, "overlay": _overlay,
}


#: With SANDBOX_TRACE=1, (step, time.perf_counter()) after each step; sent to the
#: parent with the "started" message (see Sandbox.trace, bench/startup.py --trace).
TRACE: list[tuple[str, float]] | None = None


def mark(step: str) -> None:
    if TRACE is not None:
        TRACE.append((step, time.perf_counter()))


def run_ops(ops: tuple[Op, ...] | list[Op], sys: Any = linux) -> None:
    """Perform each step in order; the first failure raises StepFailed."""
    for op in ops:
        try:
            OPS[op.kind](sys, *op.args)
        except StepFailed:
            raise  # from the steps of a step: it names the inner one
        except Exception as exc:  # noqa: BLE001 - reported to the parent by name
            raise StepFailed(op.step, exc) from exc
        mark(op.step)
