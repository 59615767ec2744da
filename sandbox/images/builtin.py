"""The built-in images: ``busybox`` and ``host``.

``busybox`` is a stored image like any other (``busybox:latest``, one layer),
made from Debian's busybox-static the first time it is asked for, under a
lock, so concurrent first uses make it once. ``host`` is not stored: it is a
view of this host, made per sandbox: a skeleton root (empty directories and
the host's merged-/usr links) and, over each of the host's system
directories (``/usr``, ``/etc``, ``/opt``, ...) and this Python's prefix, an
overlay whose lower dir is the host directory and whose upper dir lies on
the sandbox's throwaway tmpfs. So a sandbox can write anywhere (``pip
install`` into the host's Python works) and the host never changes. It
shows what the read-only binds showed before, minus whatever is mounted
below those directories on the host (an overlay does not cross mounts).

What it shows is an allow-list: ``HOST_PATHS``, this Python's prefix and
this package's checkout; nothing else of the host (not /root, /home, /run,
/var, /srv or /mnt: the skeleton has them empty). The secrets below them
(``hostmask.HIDDEN``: /etc/shadow, sudoers, SSH host keys, ...) show as
empty files and directories.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import sys
from functools import cache
from pathlib import Path

from ..errors import ImageError
from . import hostmask, layout
from .model import Image
from .oci import ImageConfig

BUILTIN = ("busybox", "host")
#: The references that name the built-in busybox image.
BUSYBOX_REFS = ("busybox", "busybox:latest")

#: Host directories the ``host`` image shows, writable through an overlay, when they exist.
HOST_PATHS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc", "/opt")
SKELETON_DIRS = ("proc", "sys", "dev", "tmp", "root", "home", "run", "var/tmp", "mnt", "srv", "workspace")

PASSWD = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
GROUP = "root:x:0:\nnogroup:x:65534:\n"
BUSYBOX_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def ensure_busybox() -> None:
    """Store ``busybox:latest`` from the host's static busybox, unless it is there."""
    from .refs import read_index

    if "busybox:latest" in read_index():
        return
    layout.ensure()
    with layout.flocked("busybox"):
        if "busybox:latest" not in read_index():
            _build_busybox()


def find_static_busybox() -> str:
    for candidate in (os.environ.get("SANDBOX_BUSYBOX"), "/bin/busybox", shutil.which("busybox")):
        if candidate and os.path.isfile(candidate) and is_static_elf(candidate):
            return candidate
    raise ImageError("no static busybox found to make the busybox image",
                     hint="apt-get install busybox-static")


def is_static_elf(path: str) -> bool:
    """True for an ELF file without a PT_INTERP (dynamic loader) header."""
    with open(path, "rb") as f:
        head = f.read(64)
        if head[:4] != b"\x7fELF" or head[4] != 2:
            return False
        phoff, = struct.unpack_from("<Q", head, 32)
        phentsize, phnum = struct.unpack_from("<HH", head, 54)
        f.seek(phoff)
        table = f.read(phentsize * phnum)
    return not any(struct.unpack_from("<I", table, i * phentsize)[0] == 3 for i in range(phnum))


def _build_busybox() -> None:
    from .pack import layer_from_directory
    from .stored import write_image

    binary = find_static_busybox()
    with layout.writing(), layout.work_dir("busybox") as work:
        root = work / "rootfs"
        _busybox_tree(binary, root)
        fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            layer = layer_from_directory(fd)
        finally:
            os.close(fd)
        write_image([layer], ImageConfig(env=(f"PATH={BUSYBOX_PATH}",), cmd=("sh",)),
                    history=[{"created_by": f"sandbox: busybox from {binary}"}], tag="busybox:latest", builtin=True)


def _busybox_tree(binary: str, root: Path) -> None:
    """The busybox rootfs: every applet linked, minimal /etc, the usual empty dirs."""
    for d in ("bin", "sbin", "usr/bin", "usr/sbin", "etc", *SKELETON_DIRS):
        (root / d).mkdir(parents=True, exist_ok=True)
    (root / "tmp").chmod(0o1777)
    shutil.copy2(binary, root / "bin/busybox")
    applets = subprocess.run([binary, "--list-full"], capture_output=True, text=True, check=True)
    for rel in applets.stdout.split():
        link = root / rel
        if rel != "bin/busybox" and not link.exists():
            link.parent.mkdir(parents=True, exist_ok=True)
            os.symlink("/bin/busybox", link)
    (root / "etc/passwd").write_text(PASSWD)
    (root / "etc/group").write_text(GROUP)
    (root / "etc/hosts").write_text("127.0.0.1\tlocalhost\n::1\tlocalhost\n")
    root.chmod(0o755)


@cache
def _python_prefixes() -> tuple[str, ...]:
    """Where the running interpreter and this package live, outside the standard paths.

    The package's own directory matters for editable installs: the interpreter's
    site-packages then points at the source checkout (the pytest11 entry point of
    this package among them), which must be importable inside too.
    """
    found = []
    package_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    for prefix in (sys.base_prefix, sys.prefix, package_root):
        real = os.path.realpath(prefix)
        if not any(real == p or real.startswith(p + "/") for p in HOST_PATHS) and os.path.isdir(real):
            found.append(real)
    return tuple(dict.fromkeys(found))


def host_image() -> Image:
    """The view of the host's /usr, /etc, libraries and this Python, each writable by overlay.

    Worked out once per process and state root (it stats every host path, and
    the pytest plugin asks for it once per test), but for what it hides, which
    is looked at again whenever a directory holding a secret changes.
    """
    root = os.path.join(layout.root(), "host", "rootfs")
    if not os.path.isdir(root):
        _build_host_skeleton()
    dirs = host_dirs()
    masks = hostmask.masks(dirs)
    image = _HOST_IMAGES.get(root)
    if image is None or image.host_dirs != dirs or image.host_masks != masks:
        image = _HOST_IMAGES[root] = Image("host", (root,), host_dirs=dirs, host_masks=masks,
                                           env=host_env())
    return image


_HOST_IMAGES: dict[str, Image] = {}


def host_dirs() -> tuple[str, ...]:
    """The host directories the host image shows (parents before children)."""
    dirs = [p for p in HOST_PATHS if os.path.isdir(p) and not os.path.islink(p)]
    return tuple(dirs + [p for p in _python_prefixes() if p not in dirs])


def host_env() -> dict[str, str]:
    """PATH with this Python's prefixes first."""
    bins = [os.path.join(p, "bin") for p in _python_prefixes() if os.path.isdir(os.path.join(p, "bin"))]
    return {"PATH": ":".join(bins + BUSYBOX_PATH.split(":"))}


def _build_host_skeleton() -> None:
    """Empty directories and the host's top-level symlinks (merged /usr)."""
    layout.ensure()
    with layout.work_dir("host") as work:
        root = work / "rootfs"
        root.mkdir(mode=0o755)
        for path in HOST_PATHS:
            rel = path.lstrip("/")
            if os.path.islink(path):
                os.symlink(os.readlink(path), root / rel)
            elif os.path.isdir(path):
                (root / rel).mkdir()
        for d in SKELETON_DIRS:
            (root / d).mkdir(parents=True, exist_ok=True)
        (root / "tmp").chmod(0o1777)
        (root / "var/tmp").chmod(0o1777)
        (layout.root() / "host").mkdir(exist_ok=True)
        layout.place(root, layout.root() / "host" / "rootfs")
