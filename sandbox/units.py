"""Parsing of the human units used in specs, flags and job files.

Sizes like ``256m`` or ``1.5g`` (binary multiples, as Docker reads them) and
durations like ``30s``, ``10m`` or ``1h30m``. ``0`` and ``none`` mean
"unlimited" where the caller allows it, and come back as None.
"""

from __future__ import annotations

import math
import re

from .errors import SpecError

_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*$", re.IGNORECASE)
_SIZE_MULT = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
_DUR_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_DUR_MULT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_UNLIMITED = {"none", "unlimited", "0", "-1", "max"}

SIZE_ACCEPTED = "a size like 512k, 256m or 2g (or 0/none for unlimited)"
DURATION_ACCEPTED = "a duration like 500ms, 30s, 10m or 1h30m (or 0/none for no limit)"


def parse_size(field: str, value: object, *, allow_unlimited: bool = True) -> int | None:
    """Bytes from an int or a string like ``256m``; None means unlimited."""
    if value is None:
        if allow_unlimited:
            return None
        raise SpecError(field, value, SIZE_ACCEPTED)
    if isinstance(value, bool):
        raise SpecError(field, value, SIZE_ACCEPTED)
    if isinstance(value, (int, float)):
        if value < 0 or not math.isfinite(value):
            raise SpecError(field, value, SIZE_ACCEPTED)
        if value == 0:
            if allow_unlimited:
                return None
            raise SpecError(field, value, SIZE_ACCEPTED)
        return int(value)
    if isinstance(value, str):
        if value.strip().lower() in _UNLIMITED:
            if allow_unlimited:
                return None
            raise SpecError(field, value, SIZE_ACCEPTED)
        match = _SIZE_RE.match(value)
        if match:
            number = float(match.group(1)) * _SIZE_MULT[match.group(2).lower()]
            if number >= 1:
                return int(number)
    raise SpecError(field, value, SIZE_ACCEPTED)


def parse_duration(field: str, value: object) -> float | None:
    """Seconds from a number or a string like ``1h30m``; None means no limit."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise SpecError(field, value, DURATION_ACCEPTED)
    if isinstance(value, (int, float)):
        if value < 0 or not math.isfinite(value):
            raise SpecError(field, value, DURATION_ACCEPTED)
        return float(value) or None
    if isinstance(value, str):
        text = value.strip().lower()
        if text in _UNLIMITED:
            return None
        try:
            seconds = float(text)
        except ValueError:
            parts = _DUR_PART.findall(text)
            if not parts or "".join(n + u for n, u in parts) != text:
                raise SpecError(field, value, DURATION_ACCEPTED) from None
            seconds = sum(float(n) * _DUR_MULT[u] for n, u in parts)
        if seconds < 0 or not math.isfinite(seconds):
            raise SpecError(field, value, DURATION_ACCEPTED)
        return seconds or None
    raise SpecError(field, value, DURATION_ACCEPTED)


def format_size(n: int | None) -> str:
    """``64 MiB`` style text for messages; ``unlimited`` for None."""
    if n is None:
        return "unlimited"
    for unit, mult in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= mult:
            value = n / mult
            return f"{value:.0f} {unit}" if value == int(value) else f"{value:.1f} {unit}"
    return f"{n} B"


def format_duration(seconds: float | None) -> str:
    """``250ms`` / ``1.5s`` / ``12s`` / ``2m30s`` style text for messages, rounded to two
    significant digits under a minute.

    A job step's time limit is what is left of the job's (1.99873 s): it is
    shown as 2s, never with every digit.
    """
    if seconds is None:
        return "unlimited"
    if seconds < 59.5:
        seconds = float(f"{seconds:.2g}")  # two significant digits
        return f"{seconds * 1000:g}ms" if seconds < 1 else f"{seconds:g}s"
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    text = f"{hours}h" if hours else ""
    text += f"{minutes}m" if minutes else ""
    return text + (f"{secs}s" if secs else "")
