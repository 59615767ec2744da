"""The container's root filesystem, as a list of setup steps.

An overlay whose lower layers are the image's and whose upper layer lives on
a tmpfs (size = the disk limit) mounted over the sandbox's state directory in
the container's own mount namespace, so it is thrown away by the kernel when
that namespace dies, even after SIGKILL, and costs the host disk nothing.
The container's /tmp lives on the same tmpfs, so one disk limit covers both.
tmpfs pages are memory: what the container writes counts against --memory.
Then /proc (with runc's default masked and read-only paths), a
minimal /dev with devpts, read-only /sys (``pseudofs``: one ``pseudo_fs``
step, which a spare has done ahead), tmpfs /tmp, the image's and the spec's
bind mounts, and pivot_root with the old root detached. A bind into /proc or
/sys keeps the masks after the binds, as runc orders them.

Everything is mounted after the root has been made private (MS_REC|MS_PRIVATE),
so no mount is ever copied into another namespace.
"""

from __future__ import annotations

import posixpath

from .images import Image
from .linux import MS_BIND, MS_NODEV, MS_NOSUID, MS_PRIVATE, MS_REC
from .plan import Op
from .pseudofs import DEVICES, MASKED_PATHS, READONLY_PATHS, mount_ops, protect_ops
from .spec import SandboxSpec


def rootfs_ops(spec: SandboxSpec, image: Image, state_path: str,
               extra_binds: tuple[tuple[str, str], ...] = ()) -> list[Op]:
    """The mount steps for one sandbox, in order, ending with pivot_root.

    ``extra_binds``: (host path, container path) bound read-only after the
    spec's mounts (a network's /etc/hosts).
    """
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
    ops.append(Op("mkdirs", ((f"{root}/proc", 0o555), (f"{root}/sys", 0o555), (f"{root}/dev", 0o755),
                             (f"{root}/tmp", 0o1777)), "make mount points"))
    binds = [(bind.source, bind.target, True, f"bind {bind.source} (image {image.name})")
             for bind in image.binds]
    binds += [(m.source, m.target, m.read_only, f"bind mount {m.source}:{m.target}")
              for m in spec.mounts]
    binds += [(source, target, True, f"bind {source} on {target}") for source, target in extra_binds]
    # /proc and /sys masked before the binds unless one goes into them (then after, as
    # runc does, so a bind cannot unmask): the common case can be staged by a spare
    staged = not any(_under(target, ("/proc", "/sys")) for _, target, _, _ in binds)
    if staged:
        ops.append(Op("pseudo_fs", (root, f"{layer}/empty"), "mount /proc, /dev and /sys"))
    else:
        ops += mount_ops(root)
    ops.append(Op("mount", (f"{layer}/tmp", f"{root}/tmp", None, MS_BIND, None), "mount /tmp"))
    # after /tmp, so that a host path under /tmp (a checkout there) is not hidden by it
    for source, target, read_only, step in binds:
        ops.append(Op("bind", (source, root, target, read_only), step))
    if not staged:
        ops += protect_ops(root, f"{layer}/empty")
    ops.append(Op("pivot_root", (root,), "pivot_root"))
    return ops


def _under(path: str, tops: tuple[str, ...]) -> bool:
    """True when path is one of tops or below one (normalized as a path in the image)."""
    clean = posixpath.normpath("/" + path.lstrip("/"))
    return any(clean == top or clean.startswith(top + "/") for top in tops)


__all__ = ["DEVICES", "MASKED_PATHS", "READONLY_PATHS", "rootfs_ops"]
