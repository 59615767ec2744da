"""The built-in images: ``busybox`` and ``host``."""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import sys
from functools import lru_cache

from ..errors import ImageError
from . import store
from .model import Image, ImageBind

BUILTIN = ("busybox", "host")

#: Host paths the ``host`` image shows, read-only, when they exist.
HOST_PATHS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc", "/opt")
SKELETON_DIRS = ("proc", "sys", "dev", "tmp", "root", "home", "run", "var/tmp", "mnt", "srv", "workspace")

PASSWD = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
GROUP = "root:x:0:\nnogroup:x:65534:\n"


def busybox_image() -> Image:
    """Debian's busybox-static with every applet linked, made on first use."""
    root = store.images_dir() / "busybox" / "rootfs"
    if not root.is_dir():
        _build_busybox()
    return Image("busybox", (str(root),))


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
    binary = find_static_busybox()
    work = store.work_dir(".build-busybox-")
    try:
        root = work / "rootfs"
        for d in ("bin", "sbin", "usr/bin", "usr/sbin", "etc") + SKELETON_DIRS:
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
        store.commit_rootfs(work, "busybox")
    finally:
        shutil.rmtree(work, ignore_errors=True)


@lru_cache(maxsize=None)
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
    """A read-only view of the host's /usr, /etc, libraries and this Python.

    Worked out once per process and state root: it stats every host path,
    and the pytest plugin asks for it once per test.
    """
    root = os.path.join(store.images_dir(), "host", "rootfs")
    if not os.path.isdir(root):
        _build_host_skeleton()
    image = _HOST_IMAGES.get(root)
    if image is None:
        image = _HOST_IMAGES[root] = _host_image(root)
    return image


_HOST_IMAGES: dict[str, Image] = {}


def _host_image(root: str) -> Image:
    binds = []
    for path in HOST_PATHS:
        if os.path.isdir(path) and not os.path.islink(path):
            binds.append(ImageBind(path, path))
    binds += [ImageBind(p, p) for p in _python_prefixes()]
    env = {"PATH": ":".join([os.path.join(p, "bin") for p in _python_prefixes()
                             if os.path.isdir(os.path.join(p, "bin"))] +
                            ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"])}
    return Image("host", (root,), binds=tuple(binds), env=env)


def _build_host_skeleton() -> None:
    """Empty directories and the host's top-level symlinks (merged /usr)."""
    work = store.work_dir(".build-host-")
    try:
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
        store.commit_rootfs(work, "host")
    finally:
        shutil.rmtree(work, ignore_errors=True)
