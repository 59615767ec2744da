"""The container's root filesystem, as a list of setup steps.

An overlay whose lower layers are the image's and whose upper layer lives on
a tmpfs (size = the disk limit) mounted over the sandbox's state directory in
the container's own mount namespace, so it is thrown away by the kernel when
that namespace dies, even after SIGKILL, and costs the host disk nothing.
The container's /tmp lives on the same tmpfs, so one disk limit covers both.
tmpfs pages are memory: what the container writes counts against --memory.
An image with host dirs (``host``) gets one overlay more per host dir, the
host dir its lowest layer, its upper dir on the same tmpfs. A spec with
``upper_dir`` (a build step) keeps the upper dirs there instead, on the
host, where the caller turns them into a layer (``upper_parts``).

Deep images: one mount(2) takes the lower dirs when its options fit a page;
deeper stacks go through ``fsconfig(lowerdir+)`` (Linux 6.8+), or, on older
kernels, by the layers' short links relative to the store (as overlay2's
``l/``). ``SANDBOX_OVERLAY_MOUNT=links`` picks the links on any kernel.
Then /proc (with runc's default masked and read-only paths), a
minimal /dev with devpts, read-only /sys (``pseudofs``: one ``pseudo_fs``
step, which a spare has done ahead), tmpfs /tmp, the image's and the spec's
bind mounts, and pivot_root with the old root detached. A bind into /proc or
/sys keeps the masks after the binds, as runc orders them.

Everything is mounted after the root has been made private (MS_REC|MS_PRIVATE),
so no mount is ever copied into another namespace.
"""

from __future__ import annotations

import os
import posixpath

from .cgroups.base import DELEGATED_MOUNT
from .errors import ImageError
from .idmap import Idmapping
from .images import Image
from .linux import MS_BIND, MS_NODEV, MS_NOEXEC, MS_NOSUID, MS_PRIVATE, MS_REC
from .plan import Op, UserNamespace
from .pseudofs import DEVICES, MASKED_PATHS, READONLY_PATHS, mount_ops, protect_ops
from .spec import ROOT_VIEW, SandboxSpec


def rootfs_ops(spec: SandboxSpec, image: Image, state_path: str,
               extra_binds: tuple[tuple[str, str], ...] = (),
               userns: UserNamespace | None = None,
               delegated: tuple[tuple[str, str], ...] = ()) -> list[Op]:
    """The mount steps for one sandbox, in order, ending with pivot_root.

    ``extra_binds``: (host path, container path) bound read-only after the
    spec's mounts (a network's /etc/hosts). ``userns``: the sandbox's user
    namespace; its steps and idmapped dirs are planned by ``idmap``.
    ``delegated``: the cgroup directories a delegating sandbox gets (host
    path, name under /sys/fs/cgroup: ``cgroups.base``).
    """
    layer = state_path
    root = f"{layer}/root"
    disk = spec.limits.disk
    size = f",size={disk}" if disk else ""
    uppers = spec.upper_dir or layer
    mapping = Idmapping(userns, layer, spec.upper_dir) if userns is not None else None
    ops = [
        Op("propagation", ("/", MS_REC | MS_PRIVATE), "make / private"),
        Op("mount", ("sandbox-layer", layer, "tmpfs", MS_NOSUID | MS_NODEV, f"mode=0700{size}"),
           "mount the writable layer (tmpfs)"),
        Op("mkdirs", ((root, 0o755), (f"{layer}/tmp", 0o1777), (f"{layer}/empty", 0o555),
                      *_upper_dirs(image, uppers)), "make overlay dirs"),
    ]
    overlay = root_overlay_op(image, root, uppers, mapping)
    ops.append(Op("mkdirs", ((f"{root}/proc", 0o555), (f"{root}/sys", 0o555), (f"{root}/dev", 0o755),
                             (f"{root}/tmp", 0o1777)), "make mount points"))
    binds = [(m.source, m.target, m.read_only, f"bind mount {m.source}:{m.target}")
             for m in spec.mounts]
    binds += [(source, target, True, f"bind {source} on {target}") for source, target in extra_binds]
    # /proc and /sys masked before the binds unless one goes into them (then after, as
    # runc does, so a bind cannot unmask): the common case can be staged by a spare
    staged = not any(_under(target, ("/proc", "/sys")) for _, target, _, _ in binds)
    if staged:
        ops.append(Op("pseudo_fs", (root, f"{layer}/empty"), "mount /proc, /dev and /sys"))
    else:
        ops += mount_ops(root)
    tmp = f"{mapping.layer_view}/tmp" if mapping else f"{layer}/tmp"
    ops.append(Op("mount", (tmp, f"{root}/tmp", None, MS_BIND, None), "mount /tmp"))
    ops += delegated_cgroup_ops(root, delegated)
    # after /tmp, so that a host path under /tmp (a checkout there) is not hidden by it
    ops += host_dir_ops(image, root, uppers, mapping)
    bind_kind = "bind_idmapped" if mapping else "bind"
    for source, target, read_only, step in binds:
        ops.append(Op(bind_kind, (source, root, target, read_only), step))
    if not staged:
        ops += protect_ops(root, f"{layer}/empty")
    ops.append(Op("pivot_root", (root,), "pivot_root"))
    if spec.root_view:  # right after the root's overlay, before anything is mounted on it
        ops.insert(3, Op("bind", (root, root, ROOT_VIEW, True), f"a view of the root at {ROOT_VIEW}"))
    ops.insert(3, overlay)
    if mapping is not None:  # before the first overlay: every lower dir is known by now
        ops[3:3] = mapping.ops(own_network=spec.network.isolated, capabilities=spec.capabilities)
    return ops


def delegated_cgroup_ops(root: str, delegated: tuple[tuple[str, str], ...]) -> list[Op]:
    """A delegating sandbox's cgroups at /sys/fs/cgroup, writable: v2's subtree over it,
    or v1's, one directory per hierarchy, on a small read-only tmpfs there. Plain binds,
    never idmapped (cgroupfs cannot be): its owner was given them on the host."""
    if not delegated:
        return []
    top = f"{root}{DELEGATED_MOUNT}"
    if len(delegated) == 1 and not delegated[0][1]:
        return [Op("bind", (delegated[0][0], root, DELEGATED_MOUNT, False),
                   f"bind the delegated cgroup on {DELEGATED_MOUNT}")]
    ops = [Op("mount", ("cgroup", top, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=755,size=64k"),
              f"mount a tmpfs on {DELEGATED_MOUNT}")]
    ops += [Op("bind", (source, root, f"{DELEGATED_MOUNT}/{name}", False),
               f"bind the delegated {name} cgroup") for source, name in delegated]
    ops.append(Op("readonly_mount", (top,), f"make the tmpfs on {DELEGATED_MOUNT} read-only"))
    return ops


#: mount(2) copies at most a page of options; overlayfs stacks at most 500 lower dirs.
PAGE = 4096
MAX_LAYERS = 500


def upper_parts(image: Image, base: str) -> list[tuple[str, str]]:
    """(container path, upper dir) of each overlay a sandbox of ``image`` writes to,
    the writable layer's dirs under ``base`` (a spec's ``upper_dir``): what
    ``images.layer_from_upper`` takes."""
    return [("/", f"{base}/upper")] + [(path, f"{base}/h{i}-upper")
                                       for i, path in enumerate(image.host_dirs)]


def _upper_dirs(image: Image, base: str) -> tuple[tuple[str, int], ...]:
    dirs = [(f"{base}/upper", 0o755), (f"{base}/work", 0o700)]
    for i, _ in enumerate(image.host_dirs):
        dirs += [(f"{base}/h{i}-upper", 0o755), (f"{base}/h{i}-work", 0o700)]
    return tuple(dirs)


def root_overlay_op(image: Image, root: str, base: str, mapping: Idmapping | None = None) -> Op:
    """The root overlay: the image's layers, the upper dir under ``base`` (held open for
    `sandbox commit`); with a ``mapping``, all of them through its idmapped copies."""
    if mapping is not None:
        view = mapping.uppers_view
        return Op("overlay", (root, "/", mapping.lowers(image.layers), f"{view}/upper", f"{view}/work",
                              0, base, mapping.links_base),
                  f"mount the {image.name} image (overlay of {len(image.layers)} idmapped layers)")
    lowers, links = _root_lowers(image)
    how = ", by short links" if links else ""
    return Op("overlay", (root, "/", lowers, f"{base}/upper", f"{base}/work", 0, base, links),
              f"mount the {image.name} image (overlay of {len(lowers)} layers{how})")


def host_dir_ops(image: Image, root: str, base: str, mapping: Idmapping | None = None) -> list[Op]:
    """One overlay per host dir (parents first): the image's layers there over the host's."""
    ops = []
    own = image.layers[:-1] if image.host_dirs else image.layers  # the last: the host skeleton
    view = mapping.uppers_view if mapping else base
    for i, path in enumerate(image.host_dirs):
        mask = image.mask_for(path)  # the host's secrets, hidden right above it
        stack = (*tuple(f"{layer}{path}" for layer in own if _real_dir(layer, path)),
                 *((mask,) if mask else ()), path)
        lowers = mapping.lowers(stack) if mapping else stack
        links = mapping.links_base if mapping else None
        ops.append(Op("overlay", (root, path, lowers, f"{view}/h{i}-upper", f"{view}/h{i}-work",
                                  MS_NOSUID | MS_NODEV, None, links), f"mount host {path} (overlay)"))
    return ops


def _root_lowers(image: Image) -> tuple[tuple[str, ...], str | None]:
    """The lower dirs as mount(2) or fsconfig gets them, or short links and their base."""
    if len(image.layers) > MAX_LAYERS:
        raise ImageError(f"image {image.name} has {len(image.layers)} layers: overlayfs "
                         f"stacks at most {MAX_LAYERS}")
    forced = os.environ.get("SANDBOX_OVERLAY_MOUNT") == "links"
    if not forced and (len(":".join(image.layers)) < PAGE - 512 or _fsconfig_ok()):
        return image.layers, None
    if not image.links or len(":".join(image.links)) >= PAGE - 512 or image.link_base is None:
        raise ImageError(f"image {image.name} has {len(image.layers)} layers: too many to mount "
                         "with this kernel (Linux 6.8 or later mounts up to 500)")
    return image.links, image.link_base


def _fsconfig_ok() -> bool:
    from .linux import lowerdir_plus_supported

    return lowerdir_plus_supported()


def _real_dir(layer: str, path: str) -> bool:
    """True when ``layer`` holds ``path`` as a directory reached through no symlink."""
    candidate = f"{layer}{path}"
    return os.path.isdir(candidate) and os.path.realpath(candidate) == os.path.realpath(layer) + path


def _under(path: str, tops: tuple[str, ...]) -> bool:
    """True when path is one of tops or below one (normalized as a path in the image)."""
    clean = posixpath.normpath("/" + path.lstrip("/"))
    return any(clean == top or clean.startswith(top + "/") for top in tops)


__all__ = ["DEVICES", "MASKED_PATHS", "READONLY_PATHS", "host_dir_ops", "root_overlay_op", "rootfs_ops",
           "upper_parts"]
