"""The plan's steps for a sandbox in a user namespace (``--userns=auto``).

The namespace is made early in the setup, by the container's first process
while it is still root on the host, and entered only at the end
(``confine.enter_user_namespace``, before the command's user is set). For a
sandbox given NET_ADMIN or SYS_ADMIN it is made with new network or UTS
namespaces, which it owns and which the first process joins at once
(``idmap.owned_namespaces``): root in the sandbox holds those capabilities
there. The other namespaces, the mount namespace included, are the host's
user namespace's: root in the sandbox cannot undo the mounts. In between, the
namespace's fd gives the image its ids:

    make / private, mount the writable layer (tmpfs), make its dirs
    userns   make the namespace: clone a paused helper into it (and into
             the network and UTS namespaces it is to own), write its
             uid_map and gid_map (the parent writes them: user_namespaces(7)),
             keep ns/user open, join the helper's other namespaces (setns by
             its pidfd), kill the helper                (Kernel.make_userns;
             it is reaped once the setup is done, before the init's first
             child, which takes its pid: Kernel.reap_userns_helper);
             then take the range's first ids as this process's filesystem
             ids (its capabilities kept): what the setup makes from here on
             (the overlays' work dirs and copy-ups, which an overlay does as
             its mounter, mount points, /dev) is root's in the sandbox
    sysctls  in the sandbox's network namespace (after the namespace when it
             made that one): ports below 1024 and ping for every user of the
             sandbox, as Docker sets them
    idmap    mount an idmapped copy of the writable layer, and of every
             lower dir, under the layer: a file owned by 0 on disk is owned
             by root in the sandbox                       (Kernel.idmapped_mount)
    overlay  the overlays, from those copies: on disk, the writable layer
             keeps the image's own ids (`sandbox commit` and builds pack it
             as it is)
    bind_idmapped  the spec's bind mounts, idmapped the same way

Idmapped mounts need Linux 5.12 (tmpfs: 6.3; overlayfs over idmapped
layers: 5.19) and a filesystem that supports them (ext4, xfs, btrfs,
tmpfs; not NFS or FUSE).
"""

from __future__ import annotations

import errno
import os

from .. import linux
from ..securejoin import secure_join
from .kernel import Kernel

TYPE_CHECKING = False  # typing itself is not loaded: the zygote stays small

if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any


def make_userns(kernel: Kernel, uid_map: str, gid_map: str, owner: tuple[int, int],
                inside: int = 0) -> None:
    """Make the namespace, and join the ``inside`` ones it owns; from now on, what the
    setup makes is its root's (``owner``)."""
    kernel.make_userns(uid_map, gid_map, owner, inside)
    kernel.set_fs_ids(*owner)


def idmap(kernel: Kernel, *mounts: tuple[str, str]) -> None:
    """Idmapped copies of directories, each on its (existing) mount point."""
    for source, target in mounts:
        kernel.idmapped_mount(source, target, 0, False)


def bind_idmapped(kernel: Kernel, source: str, root: str, dest: str, read_only: bool) -> None:
    """A bind mount of a host path (recursive), its ids mapped into the user namespace.

    A tree with a mount below it that cannot be idmapped (proc, sysfs, NFS,
    FUSE) is bound as it is when read-only (files owned by ids outside the
    range show as nobody; what all may read stays readable); read-write, it
    is refused.
    """
    path = secure_join(root, dest)
    if os.path.isdir(source):
        kernel.makedirs(path)
    elif not os.path.exists(path):
        kernel.makedirs(os.path.dirname(path))
        kernel.touch(path)
    attrs = linux.MOUNT_ATTR_NOSUID | linux.MOUNT_ATTR_NODEV
    if read_only:
        attrs |= linux.MOUNT_ATTR_RDONLY
    try:
        kernel.idmapped_mount(source, path, attrs, True)
    except OSError as exc:
        if exc.errno != errno.EINVAL:
            raise
        if not read_only:
            raise OSError(errno.EINVAL, "a filesystem in this tree cannot be idmapped for the "
                          "user namespace (bind it read-only, or run with userns=host)", source) from exc
        kernel.mount(source, path, None, linux.MS_BIND | linux.MS_REC, None)
        kernel.mount_setattr(path, attrs, True)


def sysctls(kernel: Kernel, *settings: tuple[str, str]) -> None:
    """Write /proc/sys files of the sandbox's own namespaces (before pivot_root)."""
    for path, value in settings:
        kernel.set_sysctl(path, value)


STEPS: dict[str, Callable[..., Any]] = {"userns": make_userns, "idmap": idmap, "bind_idmapped": bind_idmapped,
                                        "sysctls": sysctls}
