"""How a sandbox's root filesystem is planned when it runs in a user namespace.

The overlays take their dirs from idmapped copies (``process.userns``
performs the steps): the writable layer's tmpfs (and a build's upper dir)
seen through the mapping at ``<layer>/idmapped`` (``idmapped-upper``), and
each lower dir (an image layer, a host dir of the ``host`` image) mounted
at ``<layer>/lower/<n>``; the overlays name their lower dirs by those short
names, relative to ``<layer>/lower``, so even 500 of them fit in one
mount(2). What lies on disk keeps the image's own ids; only the view is
shifted by the sandbox's range.
"""

from __future__ import annotations

from . import linux
from .plan import Op, UserNamespace

IDMAPPED = "idmapped"
IDMAPPED_UPPER = "idmapped-upper"
LOWERS = "lower"
#: Per network namespace (only for sandboxes with their own): its users, not only root,
#: may bind ports below 1024 and ping, as Docker sets them.
SYSCTLS = (("/proc/sys/net/ipv4/ip_unprivileged_port_start", "0"),
           ("/proc/sys/net/ipv4/ping_group_range", "0 4294967294"))


def owned_namespaces(own_network: bool, capabilities: tuple[str, ...] | None) -> int:
    """The namespaces made with the user namespace, which it owns (CLONE_NEW* flags), for
    the capabilities beyond Docker's defaults that act on them: the hostname's with
    SYS_ADMIN, the network's (a network of its own) with NET_ADMIN. Root in the sandbox
    then holds those there, as in a rootless runtime. Without them the host's user
    namespace owns them, and a spare makes them ahead: made here, a network namespace
    costs a start about half a millisecond (bench/README.md). The mounts stay in a mount
    namespace the host owns: the setup mounts as the host's root, and what it mounts is
    not root's in the sandbox to undo."""
    held = set(capabilities or ())
    flags = linux.CLONE_NEWUTS if "SYS_ADMIN" in held else 0
    return flags | linux.CLONE_NEWNET if own_network and "NET_ADMIN" in held else flags


class Idmapping:
    """The idmapped copies one sandbox's overlays use, collected while its steps are planned."""

    def __init__(self, userns: UserNamespace, layer: str, upper_dir: str | None) -> None:
        self.userns = userns
        self.layer = layer
        self.upper_dir = upper_dir
        self.links_base = f"{layer}/{LOWERS}"
        self._lowers: dict[str, str] = {}

    @property
    def mounter(self) -> tuple[int, int]:
        """Root of the namespace: the owner of the namespace and of what the setup makes."""
        return self.userns.uid_base, self.userns.gid_base

    @property
    def layer_view(self) -> str:
        """The writable layer's tmpfs, seen through the mapping (/tmp comes from here)."""
        return f"{self.layer}/{IDMAPPED}"

    @property
    def uppers_view(self) -> str:
        """Where the overlays' upper and work dirs are seen through the mapping."""
        return f"{self.layer}/{IDMAPPED_UPPER}" if self.upper_dir else self.layer_view

    def lower(self, path: str) -> str:
        """The short name an overlay gives ``path``'s idmapped copy."""
        return self._lowers.setdefault(path, str(len(self._lowers)))

    def lowers(self, paths: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(self.lower(p) for p in paths)

    def ops(self, *, own_network: bool, capabilities: tuple[str, ...] | None) -> list[Op]:
        """The steps before the first overlay: mount points, the namespace, the copies."""
        views = [(self.layer, self.layer_view)]
        if self.upper_dir:
            views.append((self.upper_dir, self.uppers_view))
        copies = [*views, *((path, f"{self.links_base}/{name}") for path, name in self._lowers.items())]
        points = [(target, 0o700) for _, target in views]
        points += [(self.links_base, 0o700)] + [(target, 0o700) for _, target in copies[len(views):]]
        ns = self.userns
        ops = [Op("mkdirs", tuple(points), "make mount points for the idmapped dirs")]
        owned = owned_namespaces(own_network, capabilities)
        sysctls = Op("sysctls", SYSCTLS, "let the namespace's users bind ports below 1024 "
                     "and ping (net.ipv4.ip_unprivileged_port_start, ping_group_range)")
        if own_network and not owned & linux.CLONE_NEWNET:
            ops.append(sysctls)
        kinds = [name for flag, name in ((linux.CLONE_NEWNET, "network"), (linux.CLONE_NEWUTS, "UTS"))
                 if owned & flag]
        made = f" with {' and '.join(kinds)} namespaces of its own (joined)" if kinds else ""
        ops.append(Op("userns", (ns.map_text(ns.uid_base), ns.map_text(ns.gid_base), self.mounter, owned),
                      "make the user namespace (ids 0-65535: the leased host range; its maps "
                      f"written from outside){made}, and make files as its root from here on"))
        if owned & linux.CLONE_NEWNET:  # in the network namespace just joined
            ops.append(sysctls)
        ops.append(Op("idmap", tuple(copies), f"idmap the writable layer and {len(self._lowers)} "
                      "lower dirs (ids 0-65535 on disk show as the namespace's)"))
        return ops
