"""`sandbox commit`: what a live sandbox changed becomes a new image.

A sandbox's upper dirs live on a tmpfs in its own mount namespace, which
pivot_root detached from every path: no path on the host or in the
container reaches them. Its init holds that tmpfs open (the root ``overlay``
step keeps an O_PATH fd on it), so root on the host reads it through the
magic link ``/proc/<init pid>/fd/<n>``, which the kernel resolves to the
directory itself, whatever namespace it lives in; a process of the sandbox
cannot open its init's fds (the init is not dumpable). In a user namespace
the overlays see the layer through an idmapped copy, and the init holds the
layer itself, whose files keep the image's own ids. Which upper dir is
which container path comes from the overlay mounts the kernel lists in
``/proc/<init pid>/mountinfo``. The sandbox is frozen (its cgroup's freezer)
while the changes are packed, as `docker commit` pauses, and the tree is
read by fd without following a link (``pack``), since its content is the
sandbox's.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager

from .. import state
from ..errors import ImageError, StateError
from ..idmap import IDMAPPED
from ..linux.mountinfo import unescape
from .oci import ImageConfig
from .pack import layer_from_upper
from .reference import parse_reference
from .refs import check_taggable
from .stored import StoredImage, load_id, write_image


def commit_sandbox(sandbox: str, target: str, *, message: str = "") -> StoredImage:
    """Store the changes of the live sandbox ``sandbox`` (id or name) as the image ``target``."""
    ref = parse_reference(target)
    check_taggable(ref)
    sdir = state.resolve(sandbox)
    record = sdir.read_record()
    if not record.owner_alive:
        raise StateError(f"sandbox {sdir.id} is not running", hint="only a live sandbox can be committed")
    base: StoredImage | str = "host" if record.image == "host" else _base_image(record)
    init = _init_pid(record)
    layer_fd = _held_layer(init)
    parts = [(path, f"/proc/{init}/fd/{layer_fd}/{rel}") for path, rel in _upper_dirs(init, sdir.id)]
    with _paused(record.cgroups):
        layer = layer_from_upper(parts)
    config = base.config.config if isinstance(base, StoredImage) else ImageConfig()
    history = [{"created_by": f"sandbox commit {record.name or sdir.id}", "comment": message}]
    return write_image([layer], config, base=base, history=history, tag=ref)


def _base_image(record: state.Record) -> StoredImage:
    if not record.image_id:
        raise ImageError(f"sandbox {record.id} runs an image the store does not know",
                         hint="it was started by an older version")
    return load_id(record.image_id)


def _init_pid(record: state.Record) -> int:
    """The sandbox's pid 1, as the host sees it: the process of its cgroup whose NSpid ends in 1."""
    for path in record.cgroups:
        try:
            with open(os.path.join(path, "cgroup.procs")) as f:
                pids = [int(p) for p in f.read().split()]
        except OSError:
            continue
        for pid in pids:
            try:
                with open(f"/proc/{pid}/status") as f:
                    nspid = next(line for line in f if line.startswith("NSpid:")).split()
            except (OSError, StopIteration):
                continue
            if len(nspid) > 2 and nspid[-1] == "1":
                return pid
    raise StateError(f"sandbox {record.id} has no init process (is it starting or ending?)")


def _held_layer(init: int) -> int:
    """The fd by which the init holds the sandbox's writable layer."""
    fd_dir = f"/proc/{init}/fd"
    for name in sorted(os.listdir(fd_dir), key=int):
        base = f"{fd_dir}/{name}"
        if os.path.isdir(f"{base}/upper") and os.path.isdir(f"{base}/work"):
            return int(name)
    raise StateError(f"the init ({init}) holds no writable layer",
                     hint="the sandbox was started by an older version")


def _upper_dirs(init: int, sandbox_id: str) -> list[tuple[str, str]]:
    """(container path, upper dir relative to the layer dir) of each overlay of the sandbox."""
    found = []
    with open(f"/proc/{init}/mountinfo") as f:
        for line in f:
            fields = line.split()
            sep = fields.index("-")
            if fields[sep + 1] != "overlay":
                continue
            options = dict(o.partition("=")[::2] for o in fields[sep + 3].split(","))
            upper = options.get("upperdir", "")
            _, marker, rel = upper.partition(f"/{sandbox_id}/")
            rel = rel.removeprefix(f"{IDMAPPED}/")  # a user namespace's view: the fd is the layer
            if marker and rel.endswith("upper") and ".." not in rel.split("/"):
                found.append((unescape(fields[4]), rel))
    if not any(path == "/" for path, _ in found):
        raise StateError(f"sandbox {sandbox_id} has no root overlay to commit")
    return sorted(found)


@contextmanager
def _paused(cgroups: list[str]) -> Iterator[None]:
    """Freeze the sandbox's processes for the block (v1 freezer.state, v2 cgroup.freeze)."""
    frozen = []
    for path in cgroups:
        for name, on, off in (("freezer.state", "FROZEN", "THAWED"), ("cgroup.freeze", "1", "0")):
            control = os.path.join(path, name)
            if os.path.exists(control):
                with open(control, "w") as f:
                    f.write(on)
                frozen.append((control, off))
    try:
        _wait_frozen([c for c, _ in frozen])
        yield
    finally:
        for control, off in frozen:
            try:
                with open(control, "w") as f:
                    f.write(off)
            except OSError:
                pass


def _wait_frozen(controls: list[str], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    for control in controls:
        if not control.endswith("freezer.state"):
            continue  # cgroup.freeze: cgroup.events says frozen; packing copes either way
        while time.monotonic() < deadline:
            with open(control) as f:
                if f.read().strip() == "FROZEN":
                    break
            time.sleep(0.005)
