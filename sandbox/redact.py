"""Passwords out of URLs before they are shown: every message and log line that names a URL.

``redis://:s3cret@host:6379/0`` becomes ``redis://:***@host:6379/0``; a
``password=`` query parameter is hidden too. ``hide_secrets_from_ps`` does the
same to this process's own command line, which every user can read in ps(1),
and ``hide_from_ps`` hides given values there (`sandbox submit --secret K=V`).
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

HIDDEN = "***"
_SECRET_PARAMS = ("password", "passwd", "token")
_URL_IN_TEXT = re.compile(r"[a-z][a-z0-9+.-]*://[^\s'\"]+", re.IGNORECASE)


def redact_url(url: str) -> str:
    """``url`` with any password in it replaced by ***; unchanged when it holds none."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return "<a URL that cannot be parsed>"
    netloc = parts.netloc
    if password is not None:
        user = parts.username or ""
        netloc = f"{user}:{HIDDEN}@{netloc.rpartition('@')[2]}"
    query = parts.query
    if query and any(k.lower() in _SECRET_PARAMS for k, _ in parse_qsl(query, keep_blank_values=True)):
        query = urlencode([(k, HIDDEN if k.lower() in _SECRET_PARAMS else v)
                           for k, v in parse_qsl(query, keep_blank_values=True)], safe="*")
    if (netloc, query) == (parts.netloc, parts.query):
        return url
    return urlunsplit(parts._replace(netloc=netloc, query=query))


def redact_text(text: str) -> str:
    """``text`` with every URL in it redacted (for messages quoting a command or an error)."""
    return _URL_IN_TEXT.sub(lambda m: redact_url(m.group(0)), text)


def hide_secrets_from_ps(argv: list[str]) -> None:
    """When an argument holds a URL with a password, show ps(1) the command redacted."""
    shown = [redact_text(arg) for arg in argv]
    if shown != argv:
        from .linux.cmdline import set_cmdline

        set_cmdline(" ".join(shown))


def hide_from_ps(values: list[str], argv: list[str] | None = None) -> None:
    """Show ps(1) this process's command line with each of ``values`` as ***.

    Only what the process's own arguments held can be hidden, after it
    started: prefer passing secrets through the environment or a file.
    """
    import sys

    shown = list(sys.orig_argv if argv is None else argv)
    for value in sorted((v for v in values if v), key=len, reverse=True):
        shown = [arg.replace(value, HIDDEN) for arg in shown]
    shown = [redact_text(arg) for arg in shown]
    if shown != list(sys.orig_argv if argv is None else argv):
        from .linux.cmdline import set_cmdline

        set_cmdline(" ".join(shown))
