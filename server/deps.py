"""The routes' dependencies: the engine, and who is calling with what rights.

On the unix socket (whose file mode decides who may connect, as Docker's)
a request without a token is the host's administrator (``local``); on TCP
every request needs a token and gets 401 without a valid one, never
anonymous access. The listener a request came through is marked in its
ASGI scope by the daemon (``mark_transport``); a request with no mark (an
in-process test client) is treated as TCP.

A token comes as ``Authorization: Bearer TOKEN`` or, from the web console,
as the session cookie the console's login set (``COOKIE``: HttpOnly,
SameSite=Strict). A request that only has the cookie must also carry the
header ``X-Sandbox-Console: 1`` to change anything (a cross-site form cannot
set it), and a WebSocket opened with it must come from a page of this
daemon (its Origin is this host). A token is the daemon's (``tokens``) or
a class's student token: a student is a caller with no scope at all, who
may only use their own seat (``server.routes.classes``).

Without a token, TCP serves only the console's login and student pages and
its static files (the same for everyone, no data): PUBLIC.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Receive, Scope, Send

from .engine import Engine
from .errors import ApiError
from .errors import body as error_body
from .tokens import Token

TRANSPORT_KEY = "sandbox.transport"
#: (secret, Caller) of a TCP request, as its listener checked them (so it is not checked twice).
CALLER_KEY = "sandbox.caller"
UNAUTHORIZED = ("this daemon needs a valid token: send Authorization: Bearer TOKEN (make one "
                "with `sandbox daemon token create`; the CLI reads SANDBOX_TOKEN)")


@dataclass(frozen=True)
class Caller:
    """Who makes a request: a token's name and scopes, or ``local`` (the unix socket); a
    class's student has no scope and ``student`` = (class, student)."""

    name: str
    scopes: tuple[str, ...]
    student: tuple[str, str] | None = None

    @property
    def admin(self) -> bool:
        return "admin" in self.scopes

    def allows(self, scope: str) -> bool:
        return self.student is None and Token(self.name, self.scopes, "", 0).allows(scope)

    def sees(self, owner: str | None) -> bool:
        """What another caller made is hidden from it, unless it is an admin."""
        return self.admin or (self.student is None and owner == self.name)


LOCAL = Caller("local", ("admin",))


async def get_engine(connection: HTTPConnection) -> Engine:
    """The app's Engine (made by its lifespan); tests swap it through dependency_overrides.

    The dependencies here are coroutines although they never wait: FastAPI
    runs a plain function dependency in a worker thread, a hop that costs
    more than the check itself, on every request.
    """
    return connection.app.state.engine


EngineDep = Annotated[Engine, Depends(get_engine)]


COOKIE = "sandbox_console"
CONSOLE_HEADER = "x-sandbox-console"
#: What TCP serves without a token: pages and files with no data in them.
PUBLIC = ("/console/login", "/console/static/", "/console/vendor/", "/console/student/",
          "/favicon.ico")
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


def secret_of(headers: dict[str, str] | Any, cookies: dict[str, str]) -> tuple[str | None, bool]:
    """The token a request carries and whether it came as the console's cookie."""
    header = headers.get("authorization", "")
    scheme, _, secret = header.partition(" ")
    if header:
        return (secret.strip() if scheme.lower() == "bearer" and secret.strip() else ""), False
    cookie = cookies.get(COOKIE, "")
    return (cookie or None), bool(cookie)


def caller_for(engine: Engine, secret: str) -> Caller | None:
    """The caller a token is: a daemon token's, a student's, or None."""
    token = engine.tokens.check(secret)
    if token is not None:
        return Caller(token.name, token.scopes)
    seat = engine.classes.student(secret)
    if seat is not None:
        room, student = seat
        return Caller(f"student:{room.name}/{student.name}", (), (room.name, student.name))
    return None


def authenticate(connection: HTTPConnection, engine: Engine) -> Caller:
    """Who makes the request (401 without a valid token; 403 for a console request that
    could be a cross-site one)."""
    secret, by_cookie = secret_of(connection.headers, connection.cookies)
    if secret is None and connection.scope.get(TRANSPORT_KEY) == "unix":
        return LOCAL
    if not secret:
        raise ApiError(401, UNAUTHORIZED, headers={"WWW-Authenticate": "Bearer"})
    checked = connection.scope.get(CALLER_KEY)  # found by mark_transport for this request
    caller = checked[1] if checked and checked[0] == secret else caller_for(engine, secret)
    if caller is None:
        raise ApiError(401, "invalid token (revoked, or never made on this daemon)",
                       headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
    if by_cookie:
        _check_console_request(connection)
    return caller


def _check_console_request(connection: HTTPConnection) -> None:
    """A request authenticated by the cookie alone: no cross-site forms, no foreign pages."""
    if connection.scope["type"] == "websocket":
        origin = connection.headers.get("origin", "")
        host = connection.headers.get("host", "")
        if not origin or origin.partition("://")[2].rstrip("/") != host:
            raise ApiError(403, "a WebSocket on the console's session must come from its pages")
    elif connection.scope.get("method") not in SAFE_METHODS and \
            connection.headers.get(CONSOLE_HEADER) != "1":
        raise ApiError(403, f"the console's session changes nothing without the header "
                       f"{CONSOLE_HEADER}: 1 (send Authorization: Bearer TOKEN instead)")


async def current_caller(connection: HTTPConnection, engine: EngineDep) -> Caller:
    """The dependency form of ``authenticate`` (which WebSocket routes call themselves)."""
    return authenticate(connection, engine)


def require(scope: str) -> Callable[..., Awaitable[Caller]]:
    """A dependency: the caller, if its token has ``scope`` (403 otherwise)."""

    async def check(caller: Annotated[Caller, Depends(current_caller)]) -> Caller:
        if not caller.allows(scope):
            raise ApiError(403, f"token {caller.name!r} lacks the scope {scope!r} "
                           f"(it has {', '.join(caller.scopes) or 'none'})")
        return caller

    return check


#: Anyone with a valid token, students included (routes that check the seat themselves).
AnyCaller = Annotated[Caller, Depends(current_caller)]
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
    """Whether the request may go on: a public page, or a valid token (noted in ``scope``)."""
    if scope["type"] == "http" and (scope["path"].startswith(PUBLIC) or scope["path"] == "/"):
        return True
    headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers") or ()}
    cookie = headers.get("cookie")
    secret, _cookie = secret_of(headers, _cookies(cookie) if cookie else {})
    engine = getattr(getattr(app, "state", None), "engine", None)
    if not secret or engine is None:
        return False
    caller = caller_for(engine, secret)
    scope[CALLER_KEY] = (secret, caller)
    return caller is not None


def _cookies(header: str) -> dict[str, str]:
    from http.cookies import SimpleCookie

    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(header)
    except Exception:
        return {}
    return {key: morsel.value for key, morsel in jar.items()}


async def _refuse(scope: Scope, send: Send) -> None:
    if scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 1008, "reason": "a token is needed"})
        return
    if scope["path"].startswith("/console/") and scope.get("method") == "GET":
        await send({"type": "http.response.start", "status": 303, "headers": [
            (b"location", b"/console/login"), (b"content-length", b"0")]})
        await send({"type": "http.response.body", "body": b""})
        return
    body = json.dumps(error_body(UNAUTHORIZED, kind="ApiError")).encode()
    await send({"type": "http.response.start", "status": 401, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
        (b"www-authenticate", b"Bearer")]})
    await send({"type": "http.response.body", "body": body})
