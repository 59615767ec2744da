"""`sandbox image bootstrap debian:SUITE`: a real distribution base without Docker Hub.

debootstrap ``--variant=minbase`` installs the suite from the Debian archive
this machine's apt already uses (the first ``deb`` source of
/etc/apt/sources.list or /etc/apt/sources.list.d/*.list|*.sources that is
not the security archive), in a work dir of the store; the tree becomes a
one-layer image through the same unpacker as any import. debootstrap runs
in private mount and pid namespaces (``unshare``), so the /proc and /sys it
mounts in the target, and any daemon a package script starts, go with it
even if it is killed.

``cache``: a directory where the image's layer (a plain tar) is kept after
a bootstrap and taken from on the next one, so test runs and CI machines
pay for the download once (``--refresh`` makes a new one).
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from ..errors import HostError, ImageError
from . import layout
from .layers import layer_from_tar
from .oci import ImageConfig
from .pack import layer_from_directory
from .reference import parse_reference
from .refs import check_taggable
from .stored import StoredImage, write_image

SOURCES = ("/etc/apt/sources.list", "/etc/apt/sources.list.d")
DEFAULT_MIRROR = "http://deb.debian.org/debian"
CONFIG = ImageConfig(env=("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",),
                     cmd=("bash",))
#: What a fresh minbase holds that an image needs not: downloaded packages, apt's lists.
CLEANED = ("var/cache/apt/archives/*.deb", "var/lib/apt/lists/*_*", "var/log/*.log")


def bootstrap(ref_text: str, *, mirror: str | None = None, cache: str | None = None,
              refresh: bool = False) -> StoredImage:
    """Make (or take from ``cache``) the image ``debian:SUITE`` and tag it."""
    ref = parse_reference(ref_text)
    check_taggable(ref)
    if ref.name != "debian" or not ref.tag or not re.match(r"^[a-z]+$", ref.tag):
        raise ImageError(f"cannot bootstrap {ref_text!r}: expected debian:SUITE, e.g. debian:bookworm")
    archive = Path(cache) / f"debian-{ref.tag}.tar" if cache else None
    with layout.writing():
        if archive is not None and archive.is_file() and not refresh:
            with open(archive, "rb") as stream:
                layer = layer_from_tar(stream)
            how = f"from {archive}"
        else:
            source = mirror or find_mirror(ref.tag)
            layer = _debootstrap(ref.tag, source)
            how = f"debootstrap --variant=minbase {ref.tag} {source}"
            if archive is not None:
                _keep(layout.blob_path(layer.digest), archive)
        history = [{"created_by": f"sandbox image bootstrap {ref} ({how})"}]
        return write_image([layer], CONFIG, history=history, tag=ref)


def find_mirror(suite: str) -> str:
    """The Debian archive apt uses here (one serving ``suite`` first), else deb.debian.org."""
    entries = [e for path in _source_files() for e in _entries(path)]
    main = [(uri, suites) for uri, suites in entries if "security" not in uri]
    for uri, suites in main:
        if suite in suites:
            return uri
    return main[0][0] if main else DEFAULT_MIRROR


def _source_files() -> list[str]:
    files = [SOURCES[0]] if os.path.isfile(SOURCES[0]) else []
    files += sorted(glob.glob(f"{SOURCES[1]}/*.list") + glob.glob(f"{SOURCES[1]}/*.sources"))
    return files


def _entries(path: str) -> list[tuple[str, list[str]]]:
    """(URI, suites) of each ``deb`` source in a one-line (.list) or deb822 (.sources) file."""
    try:
        text = Path(path).read_text()
    except OSError:
        return []
    if path.endswith(".sources"):
        found = []
        for stanza in re.split(r"\n\s*\n", text):
            fields = dict(re.findall(r"^([A-Za-z-]+):\s*(.*)$", stanza, re.M))
            if "deb" in fields.get("Types", "").split() and fields.get("Enabled", "yes") != "no":
                for uri in fields.get("URIs", "").split():
                    found.append((uri.rstrip("/"), fields.get("Suites", "").split()))
        return found
    found = []
    for line in text.splitlines():
        words = re.sub(r"\[[^]]*\]", "", line.split("#", 1)[0]).split()
        if len(words) >= 3 and words[0] == "deb":
            found.append((words[1].rstrip("/"), [words[2]]))
    return found


def _debootstrap(suite: str, mirror: str):
    tool = shutil.which("debootstrap")
    if tool is None:
        raise HostError("debootstrap is not installed", hint="apt-get install debootstrap")
    with layout.work_dir("bootstrap") as work:
        target = work / "rootfs"
        command = ["unshare", "--mount", "--pid", "--fork", "--propagation", "private",
                   tool, "--variant=minbase", suite, str(target), mirror]
        print(f"bootstrap: {' '.join(command[6:])}", file=sys.stderr, flush=True)
        done = subprocess.run(command, stdin=subprocess.DEVNULL, stdout=sys.stderr)
        if done.returncode != 0:
            raise ImageError(f"debootstrap {suite} from {mirror} failed with status {done.returncode}"
                             f" (its log: {target}/debootstrap/debootstrap.log, removed now)")
        for pattern in CLEANED:
            for path in glob.glob(str(target / pattern)):
                os.unlink(path)
        fd = os.open(target, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            return layer_from_directory(fd)
        finally:
            os.close(fd)


def _keep(blob: Path, archive: Path) -> None:
    """Copy the layer's plain tar to the cache, whole or not at all."""
    archive.parent.mkdir(parents=True, exist_ok=True)
    tmp = archive.with_name(f".{archive.name}.{os.getpid()}")
    shutil.copyfile(blob, tmp)
    os.rename(tmp, archive)
