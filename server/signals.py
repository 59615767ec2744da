"""Signals as the API takes them: ``?signal=`` and ``{"signal": NAME}`` messages."""

from __future__ import annotations

import signal as signals

from .errors import ApiError


def parse_signal(name: str) -> int:
    text = name.upper()
    try:
        return int(text) if text.isdigit() else int(signals.Signals[
            text if text.startswith("SIG") else f"SIG{text}"])
    except (KeyError, ValueError):
        raise ApiError(400, f"invalid signal {name!r}: expected a name like SIGTERM or TERM, "
                       "or a number", field="signal") from None
