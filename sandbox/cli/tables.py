"""Printing rows as the listing verbs do, the same for the engine's rows and a daemon's.

No engine import: the CLI as a client of a daemon prints with these too.
"""

from __future__ import annotations

import time
from collections.abc import Sequence


def print_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """Columns padded to their widest cell, two spaces apart, trailing space stripped."""
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    for row in (header, *rows):
        print("  ".join(str(x).ljust(w) for x, w in zip(row, widths)).rstrip())


def ago(created: float, now: float | None = None) -> str:
    """``5s ago``, ``3m ago``, ``2h ago``."""
    secs = max(0, int((now or time.time()) - created))
    if secs < 60:
        return f"{secs}s ago"
    return f"{secs // 60}m ago" if secs < 3600 else f"{secs // 3600}h ago"

