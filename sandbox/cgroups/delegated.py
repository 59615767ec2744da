"""Cgroups that a process inside a delegating sandbox makes for its children.

A sandbox made with ``delegate_cgroup`` finds a subtree of its own at
/sys/fs/cgroup, laid out as $SANDBOX_CGROUP says (``base.DELEGATED_ENV``):
a remote batch of the pytest plugin puts each test's process in a cgroup of
its own there, with the test's limits, inside the batch's.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from .base import DELEGATED_ENV, Cgroup
from .v1 import CgroupV1, SandboxCgroupV1
from .v2 import SandboxCgroupV2


def delegated_cgroup(name: str, environ: Mapping[str, str] = os.environ) -> Cgroup | None:
    """The cgroup ``name`` in this sandbox's delegated subtree, named only (``make`` makes
    it with limits, a process joins it by writing 0 to each of its ``procs_files``,
    ``remove`` kills what is left in it and removes it); None outside such a sandbox."""
    version, _, root = environ.get(DELEGATED_ENV, "").partition(":")
    if not root.startswith("/"):
        return None
    if version == "v2" and os.path.isfile(os.path.join(root, "cgroup.procs")):
        return SandboxCgroupV2([os.path.join(root, name)])
    if version != "v1":
        return None
    by_controller: dict[str, str] = {}
    try:
        hierarchies = [entry for entry in os.scandir(root) if entry.is_dir()]
    except OSError:
        return None
    for entry in hierarchies:
        for controller in entry.name.split(","):
            if controller in CgroupV1.CONTROLLERS:
                by_controller[controller] = os.path.join(entry.path, name)
    return SandboxCgroupV1(by_controller) if by_controller else None
