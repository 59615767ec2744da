"""A page-hit counter kept in Redis: the code under test of examples/integration.toml."""

from __future__ import annotations


def hit(client, page: str) -> int:
    """Count one visit of ``page``; the visits so far."""
    return int(client.incr(f"hits:{page}"))


def top(client, n: int = 3) -> list[tuple[str, int]]:
    """The ``n`` most visited pages, most visited first."""
    pages = [key.decode().removeprefix("hits:") for key in client.scan_iter("hits:*")]
    counts = [(page, int(client.get(f"hits:{page}"))) for page in pages]
    return sorted(counts, key=lambda pc: (-pc[1], pc[0]))[:n]
