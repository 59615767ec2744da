"""One class as the daemon holds it: its seats (one per student), their sandboxes and tokens.

A Seat is one student: a token (only its SHA-256 is kept; the secret is
shown once, when the class is made), the sandbox they use now (a reset
makes another, ``generation`` counts them), its Terminal, and the usage
sampled for the teacher's page. What a class has on disk lives in one
directory (``$SANDBOX_STATE_DIR/classes/NAME``): ``class.json``, the
recordings, the persistent homes; its owner file lets gc remove what a
killed daemon left.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..held import Held
from ..terminal import Terminal
from .spec import ClassSpec

TOKEN_PREFIX = "sbx_student_"


def new_secret() -> tuple[str, str]:
    """A student token and its SHA-256 (what is kept)."""
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    return secret, digest(secret)


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass
class Seat:
    """One student of a class."""

    name: str
    token_sha256: str
    held: Held | None = None
    terminal: Terminal | None = None
    generation: int = 0
    home: Path | None = None
    cpu_sample: tuple[float, float] | None = None  # (when, cpu seconds) for the cpu % shown

    def row(self) -> dict[str, Any]:
        held = self.held
        terminal = self.terminal
        return {"name": self.name, "sandbox": held.id if held else None,
                "status": held.status if held else "none", "generation": self.generation,
                "connected": dict(terminal.connected) if terminal else {},
                "holder": terminal.holder if terminal else None,
                "mode": terminal.mode if terminal else None}


@dataclass
class Classroom:
    """A class: its spec, who made it, when it ends, its seats and its directory."""

    spec: ClassSpec
    owner: str
    directory: Path
    created: float = field(default_factory=time.time)
    expires: float = 0.0
    seats: dict[str, Seat] = field(default_factory=dict)
    network: str | None = None
    ended: bool = False

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def recordings(self) -> Path:
        return self.directory / "recordings"

    @property
    def homes(self) -> Path:
        return self.directory / "homes"

    def summary(self) -> dict[str, Any]:
        seats = self.seats.values()
        return {"name": self.name, "owner": self.owner, "image": self.spec.image,
                "students": self.spec.students, "created": self.created,
                "expires": self.expires, "left": max(0.0, self.expires - time.time()),
                "running": sum(1 for s in seats if s.held and s.held.status == "running"),
                "connected": sum(1 for s in seats if s.terminal and "owner" in s.terminal.connected),
                "network": self.spec.network, "home_volume": self.spec.home_volume,
                "keep_recordings": self.spec.keep_recordings}

    def recording_files(self, student: str) -> list[Path]:
        """The recordings of one student's sandboxes, oldest first."""
        return sorted(self.recordings.glob(f"{student}.*.cast"),
                      key=lambda p: int(p.name.split(".")[1]))
