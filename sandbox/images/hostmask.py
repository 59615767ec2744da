"""What the ``host`` image hides of the host: its secrets, replaced by empty files and dirs.

The host image shows an allow-list of host directories (``builtin.HOST_PATHS``,
this Python's prefix and this package's checkout) and nothing else of the
host: not /root, /home, /run, /var, /srv or /mnt (the skeleton has them
empty). Below those directories, ``HIDDEN`` names what holds secrets; each
one that exists is shown as an empty file (a file) or an empty directory (a
directory), owned and moded as the original, so programs that expect it
still find it, and writes to it go to the sandbox's writable layer like any
other. The sandbox's own state directories are hidden the same way when
they lie below a shown directory. What ``-v``/``mounts`` binds in is shown
as asked.

How: one *mask* directory tree per set of hidden paths, made once under
the image store (``host/masks/<key>``; in the run dir when the store lies
below a shown dir), whose ``etc`` (say) lies between
the sandbox's writable layer and the host's /etc in the /etc overlay: its
empty files cover the originals, its directories are opaque (the
``trusted.overlay.opaque`` xattr) so nothing below shows. It costs a
sandbox nothing but one lower dir more. Which paths exist is checked again
whenever a directory holding them changes (its mtime), or the state dirs do.
"""

from __future__ import annotations

import glob
import hashlib
import os
import shutil
import stat
from functools import cache
from pathlib import Path

from .. import state
from ..errors import HostError
from ..securejoin import within
from . import layout

#: What holds secrets below the directories the host image shows (globs, from /):
#: password hashes, sudo rules, host keys and TLS private keys, Kerberos and VPN
#: secrets, Wi-Fi passwords, service configurations that carry passwords or tokens
#: (Redis, Docker, containers' registry logins, Kubernetes, cloud-init), ours.
HIDDEN = (
    "/etc/shadow", "/etc/shadow-", "/etc/gshadow", "/etc/gshadow-", "/etc/security/opasswd",
    "/etc/sudoers", "/etc/sudoers.d", "/etc/doas.conf",
    "/etc/ssh/ssh_host_*", "/etc/ssl/private", "/etc/pki/tls/private", "/etc/letsencrypt",
    "/etc/krb5.keytab", "/etc/ipsec.secrets", "/etc/ipsec.d/private", "/etc/ppp/*-secrets",
    "/etc/NetworkManager/system-connections", "/etc/wpa_supplicant", "/etc/wireguard",
    "/etc/redis", "/etc/docker", "/etc/containers/auth.json", "/etc/kubernetes", "/etc/rancher",
    "/etc/cloud", "/etc/credstore", "/etc/credstore.encrypted", "/etc/sandbox",
)
OPAQUE = ("trusted.overlay.opaque", b"y")

#: (host path, is a directory, mode, uid, gid) of one hidden entry.
Entry = tuple[str, bool, int, int, int]


def masks(host_dirs: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    """(host dir, its mask dir) for each shown dir with something hidden below it."""
    stamp = _stamp(host_dirs)
    cached = _CACHE.get(host_dirs)
    if cached is not None and cached[0] == stamp:
        return cached[1]
    entries = hidden_entries(host_dirs)
    found: tuple[tuple[str, str], ...] = ()
    if entries:
        top = _ensure_tree(entries, _masks_dir(host_dirs))
        found = tuple((d, f"{top}{d}") for d in host_dirs if any(within(e[0], d) for e in entries))
    _CACHE[host_dirs] = (stamp, found)
    return found


_CACHE: dict[tuple[str, ...], tuple[tuple, tuple[tuple[str, str], ...]]] = {}


def _patterns() -> tuple[str, ...]:
    """HIDDEN, and this installation's own state directories (taken literally)."""
    return (*HIDDEN, *(glob.escape(own) for own in _state_dirs()))


def _state_dirs() -> tuple[str, str]:
    return str(state.lib_dir()), str(state.run_dir())


def _stamp(host_dirs: tuple[str, ...]) -> tuple:
    """What changes when a hidden entry comes or goes: the mtimes of the dirs that hold
    HIDDEN's entries, and this installation's state dirs themselves.

    Not their parents: /run and /dev/shm gain and lose entries all the time
    (the pytest plugin's report dirs, one per test), and each change would
    make every sandbox look for the hidden entries again.
    """
    out: list[object] = [tuple(host_dirs), str(layout.root())]
    for parent in _parents(HIDDEN):
        try:
            out.append(os.stat(parent).st_mtime_ns)
        except OSError:
            out.append(None)
    for own in _state_dirs():
        try:
            st = os.lstat(own)
            out.append((st.st_ino, st.st_mode, st.st_uid, st.st_gid))
        except OSError:
            out.append(None)
    return tuple(out)


@cache
def _parents(patterns: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(sorted({os.path.dirname(p) for p in patterns}))


def hidden_entries(host_dirs: tuple[str, ...]) -> tuple[Entry, ...]:
    """Every existing hidden path below a shown dir, with its type, mode and owner."""
    found = {}
    for pattern in _patterns():
        for path in glob.glob(pattern):
            if not any(within(path, d) and path != d for d in host_dirs):
                continue
            try:
                st = os.lstat(path)
            except OSError:
                continue
            found[path] = (path, stat.S_ISDIR(st.st_mode), stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid)
    return tuple(sorted(found.values()))


def _masks_dir(host_dirs: tuple[str, ...]) -> Path:
    """Where the mask trees live: in the image store, or in the run dir when the store lies
    below a shown dir (an overlay refuses a lower dir inside another of its lower dirs)."""
    for candidate in (layout.root() / "host" / "masks", state.run_dir() / "masks"):
        if not any(within(str(candidate), d) for d in host_dirs):
            return candidate
    raise HostError(f"both {state.lib_dir()} and {state.run_dir()} lie below a directory the "
                    "host image shows", hint="set SANDBOX_STATE_DIR or SANDBOX_RUN_DIR elsewhere "
                    "(the defaults are /var/lib/sandbox and /run/sandbox)")


def _ensure_tree(entries: tuple[Entry, ...], directory: Path) -> Path:
    """The mask tree for these entries, made once (content-keyed, placed whole)."""
    key = hashlib.sha256(repr(entries).encode()).hexdigest()[:16]
    top = directory / key
    if top.is_dir():
        return top
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    work = directory / f".{key}.{os.getpid()}.{os.urandom(4).hex()}"
    work.mkdir(mode=0o755)
    try:
        for entry in entries:
            _make_entry(work, entry)
        os.rename(work, top)
    except OSError:
        if not top.is_dir():  # another process placed the same tree first: fine
            raise
    finally:
        if work.exists():
            shutil.rmtree(work, ignore_errors=True)
    return top


def _make_entry(tree: Path, entry: Entry) -> None:
    """An empty file, or an empty opaque directory, as the original; parents as theirs."""
    path, is_dir, mode, uid, gid = entry
    parts = path.strip("/").split("/")
    current, host = tree, ""
    for part in parts[:-1]:
        current, host = current / part, f"{host}/{part}"
        if not current.is_dir():
            st = os.stat(host)
            current.mkdir()
            os.chown(current, st.st_uid, st.st_gid)
            os.chmod(current, stat.S_IMODE(st.st_mode))
    target = current / parts[-1]
    if is_dir:
        target.mkdir()
        os.setxattr(target, *OPAQUE)
    else:
        target.touch()
    os.chown(target, uid, gid)
    os.chmod(target, mode)
