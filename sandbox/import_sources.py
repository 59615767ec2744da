"""What `sandbox image import` accepts as its source, and how it names a refused one.

Shared by the importer (sandbox/images/importer.py) and the CLI's daemon client
(sandbox/cli/images.py), which checks a source before sending it and must say
exactly what the embedded import says; standard library only, so the client
path still imports no engine module.
"""

from __future__ import annotations

import stat

SOURCES = "a directory, a tar archive (plain, gzip, xz, bzip2 or zstd) or - for standard input"


def file_kind(mode: int) -> str:
    """What a source that is neither a directory nor a regular file is, for the message."""
    for test, text in ((stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return text
    return "not a regular file"


def os_error_text(exc: OSError) -> str:
    """Why a source could not be read, as the import's one line says it."""
    if isinstance(exc, FileNotFoundError):
        return "no such file or directory"
    return (exc.strerror or str(exc)).lower()
