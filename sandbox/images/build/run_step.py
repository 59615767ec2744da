"""RUN: the command in a sandbox of this engine, its changes kept as a layer.

The sandbox runs the image the build has reached, with the build's limits
and network (none unless the build asks), the step's environment, working
directory and user, and ``SandboxSpec.upper_dir`` pointing into a work dir
of the store, so the overlay's upper dir outlives it; ``pack`` then turns
that dir (overlay whiteouts to OCI whiteouts) into the step's layer. With a
network, the host's /etc/resolv.conf is shown read-only so names resolve;
the empty file that mount leaves in an image without one is removed before
packing. A step that exits non-zero raises BuildStepFailed with its status.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path

from ... import images
from ...errors import BuildStepFailed
from ...logs import LogRecord
from ...result import Result
from ...runtime import Sandbox
from ...spec import Limits, Mount, NetworkSpec, SandboxSpec
from .cancel import BuildCancel
from .steps import RunAction

RESOLV_CONF = "/etc/resolv.conf"


def run_in_sandbox(action: RunAction, image_ref: str, *, work: Path, limits: Limits,
                   network: NetworkSpec, on_output: Callable[[bytes], None],
                   cancel: BuildCancel | None = None) -> Result:
    """Run the step with its writable layer kept under ``work``; its Result (the sandbox
    killed at once when ``cancel`` is set meanwhile)."""
    image = images.get(image_ref)
    mounts = []
    stub = False
    if network.mode != "none" and os.path.exists(RESOLV_CONF):
        mounts.append(Mount(RESOLV_CONF, RESOLV_CONF))
        stub = image.host_path(RESOLV_CONF) is None
    spec = SandboxSpec(image=image_ref, command=action.argv, env=dict(action.env),
                       workdir=action.workdir, user=action.user, limits=limits, network=network,
                       mounts=tuple(mounts), upper_dir=str(work))

    def forward(record: LogRecord) -> None:
        on_output(record.data)

    sandbox = Sandbox(spec, on_output=forward, log_file=False)
    result = sandbox.run(stop=cancel.watch if cancel is not None else None)
    if stub:
        _remove_stub(work / "upper" / RESOLV_CONF.lstrip("/"))
    return result


def check(result: Result, text: str) -> None:
    """BuildStepFailed when the step did not exit 0 (a limit named when one ended it)."""
    if result.exit_code == 0:
        return
    why = result.limit_message() or (f"killed by signal {result.signal}" if result.signal
                                     else f"exit code {result.exit_code}")
    raise BuildStepFailed(f"{text}: {why}", exit_status=result.exit_code or 1)


def layer_of(image_ref: str, work: Path) -> images.Layer | None:
    """The layer of what the step changed; None when it changed nothing."""
    from ...rootfs import upper_parts

    parts = upper_parts(images.get(image_ref), str(work))
    if not any(_has_entries(path) for _, path in parts):
        return None
    return images.layer_from_upper(parts)


def _has_entries(path: str) -> bool:
    try:
        return bool(os.listdir(path))
    except FileNotFoundError:
        return False


def _remove_stub(path: Path) -> None:
    """The empty mount point a bind left where the image had no file."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISREG(st.st_mode) and st.st_size == 0:
        os.unlink(path)
