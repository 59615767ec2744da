"""The routes' dependencies: the engine, and who is calling with what rights.

On the unix socket (whose file mode decides who may connect, as Docker's)
a request without a token is the host's administrator (``local``); on TCP
every request needs ``Authorization: Bearer TOKEN`` and gets 401 without a
valid one, never anonymous access. The listener a request came through is
marked in its ASGI scope by the daemon (``mark_transport``); a request with
no mark (an in-process test client) is treated as TCP.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Receive, Scope, Send

from .engine import Engine
from .errors import ApiError
from .errors import body as error_body
from .tokens import Token

TRANSPORT_KEY = "sandbox.transport"
UNAUTHORIZED = ("this daemon needs a valid token: send Authorization: Bearer TOKEN (make one "
                "with `sandbox daemon token create`; the CLI reads SANDBOX_TOKEN)")


@dataclass(frozen=True)
class Caller:
    """Who makes a request: a token's name and scopes, or ``local`` (the unix socket)."""

    name: str
    scopes: tuple[str, ...]

    @property
    def admin(self) -> bool:
        return "admin" in self.scopes

    def allows(self, scope: str) -> bool:
        return Token(self.name, self.scopes, "", 0).allows(scope)

    def sees(self, owner: str | None) -> bool:
        """What another caller made is hidden from it, unless it is an admin."""
        return self.admin or owner == self.name


LOCAL = Caller("local", ("admin",))


def get_engine(connection: HTTPConnection) -> Engine:
    """The app's Engine (made by its lifespan); tests swap it through dependency_overrides."""
    return connection.app.state.engine


EngineDep = Annotated[Engine, Depends(get_engine)]


def authenticate(connection: HTTPConnection, engine: EngineDep) -> Caller:
    header = connection.headers.get("authorization", "")
    scheme, _, secret = header.partition(" ")
    if not header and connection.scope.get(TRANSPORT_KEY) == "unix":
        return LOCAL
    if scheme.lower() != "bearer" or not secret.strip():
        raise ApiError(401, UNAUTHORIZED, headers={"WWW-Authenticate": "Bearer"})
    token = engine.tokens.check(secret.strip())
    if token is None:
        raise ApiError(401, "invalid token (revoked, or never made on this daemon)",
                       headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
    return Caller(token.name, token.scopes)


def require(scope: str) -> Callable[..., Caller]:
    """A dependency: the caller, if its token has ``scope`` (403 otherwise)."""

    def check(caller: Annotated[Caller, Depends(authenticate)]) -> Caller:
        if not caller.allows(scope):
            raise ApiError(403, f"token {caller.name!r} lacks the scope {scope!r} "
                           f"(it has {', '.join(caller.scopes) or 'none'})")
        return caller

    return check


Reader = Annotated[Caller, Depends(require("read"))]
Runner = Annotated[Caller, Depends(require("run"))]
Submitter = Annotated[Caller, Depends(require("jobs"))]
ImageAdmin = Annotated[Caller, Depends(require("images"))]


def mark_transport(app: ASGIApp, transport: str) -> ASGIApp:
    """The app, each request marked as come through ``transport`` (unix or tcp).

    On TCP nothing is served without a valid token, not even the OpenAPI
    document or /v1/health: a request without one is answered 401 here.
    """

    async def marked(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await app(scope, receive, send)
            return
        scope = {**scope, TRANSPORT_KEY: transport}
        if transport != "unix" and not _token_valid(app, scope):
            await _refuse(scope, send)
            return
        await app(scope, receive, send)

    return marked


def _token_valid(app: ASGIApp, scope: Scope) -> bool:
    header = dict(scope.get("headers") or ()).get(b"authorization", b"").decode("latin-1")
    scheme, _, secret = header.partition(" ")
    engine = getattr(getattr(app, "state", None), "engine", None)
    return (scheme.lower() == "bearer" and engine is not None
            and engine.tokens.check(secret.strip()) is not None)


async def _refuse(scope: Scope, send: Send) -> None:
    if scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 1008, "reason": "a token is needed"})
        return
    body = json.dumps(error_body(UNAUTHORIZED, kind="ApiError")).encode()
    await send({"type": "http.response.start", "status": 401, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
        (b"www-authenticate", b"Bearer")]})
    await send({"type": "http.response.body", "body": body})
