"""One cgroup per sandbox, behind one interface with a v1 and a v2 backend.

``host_cgroups()`` detects the layout: pure v2 (``/sys/fs/cgroup`` is cgroup2),
or v1 with its controllers mounted one per directory, which includes the
"hybrid" layout (v1 controllers plus an empty v2 tree at ``unified``).
"""

from __future__ import annotations

import os

from .base import Cgroup, CgroupHierarchy, CgroupStats
from .delegated import delegated_cgroup
from .v1 import CgroupV1
from .v2 import CgroupV2

__all__ = ["Cgroup", "CgroupHierarchy", "CgroupStats", "CgroupV1", "CgroupV2", "delegated_cgroup",
           "host_cgroups"]

_CACHE: dict[str, CgroupHierarchy] = {}


def host_cgroups(mountinfo: str = "/proc/self/mountinfo") -> CgroupHierarchy:
    """The cgroup hierarchy this host uses, detected once per process."""
    root = os.environ.get("SANDBOX_CGROUP_ROOT", "")
    key = f"{mountinfo}:{root}"
    if key not in _CACHE:
        _CACHE[key] = detect(mountinfo)
    return _CACHE[key]


def detect(mountinfo: str = "/proc/self/mountinfo") -> CgroupHierarchy:
    """Read mountinfo and pick the backend: v2 when the main tree is cgroup2."""
    v1_mounts: dict[str, str] = {}
    v2_root = None
    with open(mountinfo) as f:
        for line in f:
            pre, _, post = line.partition(" - ")
            fields, post_fields = pre.split(), post.split()
            if len(fields) < 5 or len(post_fields) < 3:
                continue
            mountpoint, fstype, options = fields[4], post_fields[0], post_fields[2]
            if fstype == "cgroup2" and mountpoint == "/sys/fs/cgroup":
                v2_root = mountpoint
            elif fstype == "cgroup":
                for opt in options.split(","):
                    if opt in CgroupV1.CONTROLLERS:
                        v1_mounts[opt] = mountpoint
    if v2_root:
        return CgroupV2(v2_root)
    if v1_mounts:
        return CgroupV1(v1_mounts)
    from ..errors import HostError

    raise HostError(
        "no cgroup hierarchy is mounted",
        hint="mount cgroup2 on /sys/fs/cgroup (mount -t cgroup2 none /sys/fs/cgroup)",
    )
