"""Bearer tokens for the daemon's TCP listener: made once, stored hashed, checked per request.

A token is 32 random bytes shown once, when it is made (`sandbox daemon
token create --name ci --scope jobs`); the daemon keeps only its SHA-256
(a random secret needs no slow hash), with its name and scopes, in
``$SANDBOX_STATE_DIR/daemon/tokens.json`` (mode 0600). Comparisons are in
constant time.

Scopes:

- ``read``: see (list, inspect, follow) what the token made, images, networks
- ``run``: create, start, stop, kill and remove sandboxes; make and remove networks
- ``jobs``: submit and cancel jobs
- ``images``: remove, build, pull and push images
- ``mount-host``: bind host paths into sandboxes (refused without it)
- ``admin``: everything, including what other tokens made

Every scope but ``mount-host`` implies ``read``. A token sees only what it
made, unless it is an admin token.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from sandbox import SandboxError, lib_dir

SCOPES = ("read", "run", "jobs", "images", "mount-host", "admin")
PREFIX = "sbx_"
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")


@dataclass(frozen=True)
class Token:
    """A token's record (never the token itself)."""

    name: str
    scopes: tuple[str, ...]
    sha256: str
    created: float

    def allows(self, scope: str) -> bool:
        return "admin" in self.scopes or scope in self.scopes or (
            scope == "read" and any(s != "mount-host" for s in self.scopes))


def tokens_path() -> Path:
    return lib_dir() / "daemon" / "tokens.json"


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def load(path: Path | None = None) -> list[Token]:
    """Every token's record (none when the file does not exist yet)."""
    path = path or tokens_path()
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as exc:
        raise SandboxError(f"cannot read the daemon's tokens in {path}: {exc}") from exc
    return [Token(t["name"], tuple(t["scopes"]), t["sha256"], t.get("created", 0.0)) for t in data]


def _save(tokens: list[Token], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump([asdict(t) for t in tokens], f, indent=1)
    os.replace(tmp, path)


def create(name: str, scopes: list[str] | tuple[str, ...], path: Path | None = None) -> str:
    """Make a token; the secret (shown once, never stored)."""
    path = path or tokens_path()
    if not _NAME_RE.match(name or ""):
        raise SandboxError(f"invalid token name {name!r}: expected letters, digits, '_', '.', '-'")
    scopes = tuple(dict.fromkeys(scopes or ("read",)))
    bad = [s for s in scopes if s not in SCOPES]
    if bad:
        raise SandboxError(f"invalid scope {bad[0]!r}: expected {', '.join(SCOPES)}")
    tokens = load(path)
    if any(t.name == name for t in tokens):
        raise SandboxError(f"a token named {name!r} exists",
                           hint="revoke it first with `sandbox daemon token rm`")
    secret = PREFIX + secrets.token_urlsafe(32)
    tokens.append(Token(name, scopes, _digest(secret), time.time()))
    _save(tokens, path)
    return secret


def revoke(name: str, path: Path | None = None) -> None:
    path = path or tokens_path()
    tokens = load(path)
    if not any(t.name == name for t in tokens):
        raise SandboxError(f"no token named {name!r}", hint="`sandbox daemon token ls` lists them")
    _save([t for t in tokens if t.name != name], path)


class TokenStore:
    """The tokens the daemon checks, read again when the file changes."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or tokens_path()
        self._mtime: float | None = None
        self._tokens: list[Token] = []

    def _fresh(self) -> list[Token]:
        try:
            mtime = self.path.stat().st_mtime
        except FileNotFoundError:
            return []
        if mtime != self._mtime:
            self._tokens, self._mtime = load(self.path), mtime
        return self._tokens

    def check(self, secret: str) -> Token | None:
        """The token this secret is, or None."""
        digest = _digest(secret)
        found = None
        for token in self._fresh():
            if hmac.compare_digest(token.sha256, digest):
                found = token
        return found
