"""Users and groups as an image names them, read from its /etc/passwd and /etc/group.

Resolved in the parent, before anything is created, so a bad ``--user``
costs nothing and no container reads /etc/passwd at start.
"""

from __future__ import annotations

import os
import stat


def _lookup(path: str, key: str, by_name: bool) -> list[str] | None:
    """The colon-separated entry for key in passwd/group, or None.

    The file is the image's, read on the host: only a regular file is read
    (an imported image may hold a FIFO there, whose read would never end).
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            return None
        with open(fd, errors="replace") as f:
            for line in f:
                fields = line.rstrip("\n").split(":")
                if len(fields) >= 3 and (fields[0] == key if by_name else fields[2] == key):
                    return fields
    except OSError:
        pass
    return None


def resolve_user(user: str, passwd: str, group_file: str) -> tuple[int, int, list[int], str]:
    """(uid, gid, supplementary gids, home) for ``uid[:gid]`` or ``name[:group]``.

    Raises LookupError for a name the files do not know.
    """
    name, _, group = user.partition(":")
    entry = _lookup(passwd, name, by_name=not name.isdigit())
    if name.isdigit():
        uid = int(name)
    elif entry:
        uid = int(entry[2])
    else:
        raise LookupError(f"no user {name!r} in the container's /etc/passwd")
    gid = int(entry[3]) if entry and len(entry) > 3 and entry[3].isdigit() else 0
    if group:
        if group.isdigit():
            gid = int(group)
        else:
            gentry = _lookup(group_file, group, by_name=True)
            if not gentry:
                raise LookupError(f"no group {group!r} in the container's /etc/group")
            gid = int(gentry[2])
    home = entry[5] if entry and len(entry) > 5 and entry[5] else "/"
    return uid, gid, [gid], home
