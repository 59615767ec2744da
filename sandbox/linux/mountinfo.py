"""The kernel's mount table as /proc/PID/mountinfo shows it (proc(5))."""

from __future__ import annotations

#: mountinfo's octal escapes in path fields: space, tab, newline, backslash.
_ESCAPES = (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\"))


def unescape(field: str) -> str:
    """A mountinfo path field (mount point, root) as the path it names."""
    for code, char in _ESCAPES:
        field = field.replace(code, char)
    return field
