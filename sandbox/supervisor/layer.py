"""The writable layer of a kept sandbox: a tmpfs on the host that outlives each run.

A sandbox's writable layer normally lives on a tmpfs mounted inside its own
mount namespace, gone with it. A kept sandbox starts again with the same
layer (`sandbox stop`, then `start`), so its layer is a tmpfs mounted on
the host instead, at ``$SANDBOX_RUN_DIR/layers/<id>`` (nosuid, nodev, mode
0700, the size ``--disk``: the disk limit holds), and the sandbox's overlay
takes its upper and work dirs from there (``SandboxSpec.upper_dir``). /tmp
stays on each run's own tmpfs: a start is like a boot. The layer is memory,
as the other is, and, like the run dir, does not survive a reboot.

It is unmounted when the sandbox is removed (`sandbox rm`, the supervisor
of a `--rm` sandbox, or `sandbox gc` for one whose state dir is gone).
"""

from __future__ import annotations

import os
from pathlib import Path

from .. import linux, state


def layers_dir() -> Path:
    return state.run_dir() / "layers"


def layer_path(sandbox_id: str) -> Path:
    return layers_dir() / sandbox_id


def make(sandbox_id: str, disk: int | None) -> str:
    """Mount the layer's tmpfs (once: a mounted one is kept); its path."""
    path = layer_path(sandbox_id)
    if os.path.ismount(path):
        return str(path)
    layers_dir().mkdir(mode=0o700, parents=True, exist_ok=True)
    path.mkdir(mode=0o700, exist_ok=True)
    size = f",size={disk}" if disk else ""
    linux.mount("sandbox-kept-layer", str(path), "tmpfs", linux.MS_NOSUID | linux.MS_NODEV,
                f"mode=0700{size}")
    return str(path)


def remove(sandbox_id: str) -> bool:
    """Unmount and remove the layer; False when there was none."""
    path = layer_path(sandbox_id)
    found = path.exists()
    if os.path.ismount(path):
        linux.umount(str(path), linux.MNT_DETACH)
    try:
        path.rmdir()
    except FileNotFoundError:
        pass
    return found


def leftovers() -> list[str]:
    """Ids of the layers whose sandbox has no state dir any more."""
    try:
        names = os.listdir(layers_dir())
    except FileNotFoundError:
        return []
    return [n for n in names if not (state.sandboxes_dir() / n).exists()]
