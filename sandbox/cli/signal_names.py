"""Signals as the CLI takes them (`sandbox kill -s`), embedded and through a daemon alike."""

from __future__ import annotations

import signal


def parse_signal(text: str) -> int:
    """``KILL``, ``SIGTERM``, ``hup`` or ``9`` as a signal number (SpecError otherwise)."""
    from ..errors import SpecError

    name = text.upper()
    if name.isdigit() and 0 < int(name) < signal.NSIG:
        return int(name)
    try:
        return int(signal.Signals[name if name.startswith("SIG") else f"SIG{name}"])
    except KeyError:
        raise SpecError("signal", text, "a signal name like TERM or SIGHUP, or a number "
                        f"from 1 to {signal.NSIG - 1}") from None
