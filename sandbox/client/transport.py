"""Requests to a daemon over its unix socket or TCP (plain or TLS): JSON in and out.

The standard library only, and little of it (``http1`` speaks HTTP/1.1 on
the socket; ssl is imported for a TLS host alone): the CLI as a client must
start fast, and http.client or httpx (or the engine) would cost more than
the request itself. One keep-alive connection per Transport, reused while
the daemon keeps it open; a stream (logs, events, progress) takes that
connection, or a new one, and hands it back once read to its end. Not for
use by two threads at once: a thread of its own makes its own Transport.

Hosts, as SANDBOX_HOST or ``--host`` take them:

- ``unix:///run/sandbox/sandbox.sock`` (a path; ``unix://`` alone is the default socket)
- ``tcp://HOST:PORT`` (plain HTTP; the daemon asks a bearer token: SANDBOX_TOKEN)
- ``https://HOST:PORT`` or ``tls://HOST:PORT`` (TLS; SANDBOX_CA_CERT names a CA file
  for a daemon whose certificate no system CA signed)
"""

from __future__ import annotations

import json
import os

# The C socket alone for unix sockets: the socket module around it (its enums, makefile,
# create_connection) costs about as much to import as the rest of the client; TCP imports it.
from _socket import AF_UNIX, SOCK_STREAM
from _socket import socket as bare_socket
from collections.abc import Iterator

from .http1 import Connection, ProtocolError, Response

TYPE_CHECKING = False  # as typing's, which the client's start does not import (see sandbox.client)

if TYPE_CHECKING:
    import socket
    from typing import Any

DEFAULT_SOCKET = "/run/sandbox/sandbox.sock"
#: How long a plain request may take; streams and waits have none.
TIMEOUT = 60.0
#: The bytes a query value or path segment keeps as they are (RFC 3986 unreserved).
UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")


class DaemonError(Exception):
    """The daemon refused a request, or cannot be reached: one line, and the CLI's exit status.

    ``status`` is the HTTP status (0: no answer); ``field`` names the bad
    field of a 400, as the engine's SpecError does.
    """

    def __init__(self, message: str, *, status: int = 0, exit_status: int = 125,
                 field: str | None = None, kind: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.exit_status = exit_status
        self.field = field
        self.kind = kind

    def __str__(self) -> str:
        return self.message


def parse_host(host: str) -> tuple[str, str, int | None]:
    """(scheme, address, port) of a host URL: ('unix', path, None) or ('tcp'|'https', name, port)."""
    scheme, sep, rest = host.partition("://")
    if not sep:
        raise DaemonError(f"invalid host {host!r}: expected unix:///PATH, tcp://HOST:PORT "
                          "or https://HOST:PORT")
    if scheme == "unix":
        return "unix", rest or DEFAULT_SOCKET, None
    if scheme in ("tcp", "http", "https", "tls"):
        name, _, port = rest.rstrip("/").rpartition(":")
        if not name or not port.isdigit():
            raise DaemonError(f"invalid host {host!r}: expected {scheme}://HOST:PORT")
        return ("https" if scheme in ("https", "tls") else "tcp"), name.strip("[]"), int(port)
    raise DaemonError(f"invalid host {host!r}: expected unix://, tcp:// or https://")


class Transport:
    """Requests to one daemon; JSON in and out, errors as DaemonError."""

    def __init__(self, host: str, token: str | None = None) -> None:
        self.host = host
        self.scheme, self.address, self.port = parse_host(host)
        self.token = token
        self._idle: Connection | None = None
        self._closed = False

    def _connection(self, timeout: float | None) -> Connection:
        """The kept connection if the daemon has not closed it meanwhile, else a new one."""
        conn, self._idle = self._idle, None
        if conn is not None and conn.stale():
            conn.close()
            conn = None
        if conn is None:
            conn = self._connect()
        conn.settimeout(timeout)
        return conn

    def _connect(self) -> Connection:
        try:
            if self.scheme == "unix":
                sock: Any = _unix_connection(self.address)
                host_header = "localhost"
            else:
                sock = _tcp_connection(self.address, self.port, tls=self.scheme == "https")
                name = f"[{self.address}]" if ":" in self.address else self.address
                host_header = f"{name}:{self.port}"
        except OSError as exc:
            raise self._unreachable(exc) from exc
        return Connection(sock, host_header, on_idle=self._keep, on_error=self._lost)

    def _keep(self, conn: Connection) -> None:
        """A connection whose response was read to its end: the next request's."""
        if self._idle is None and not self._closed:
            self._idle = conn
        else:
            conn.close()

    def _unreachable(self, exc: Exception) -> DaemonError:
        return DaemonError(f"cannot reach the sandbox daemon at {self.host}: "
                           f"{getattr(exc, 'strerror', None) or exc}", kind="unreachable")

    def _lost(self, exc: Exception) -> DaemonError:
        return DaemonError(f"lost the connection to the sandbox daemon at {self.host}: "
                           f"{getattr(exc, 'strerror', None) or exc}", kind="unreachable")

    def _headers(self, extra: dict[str, str] | None) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        headers.update(extra or {})
        return headers

    def _send(self, method: str, url: str, body: bytes | None, headers: dict[str, str],
              timeout: float | None) -> Response:
        conn = self._connection(timeout)
        try:
            return conn.request(method, url, headers, body)
        except (OSError, ProtocolError) as exc:
            conn.close()
            raise self._unreachable(exc) from exc

    def request(self, method: str, path: str, *, query: dict[str, Any] | None = None,
                json_body: Any = None, body: bytes | None = None,
                headers: dict[str, str] | None = None, timeout: float | None = TIMEOUT) -> Any:
        """One request on the kept connection; the decoded JSON answer (None for an empty one).
        ``timeout`` None: as long as it takes (a wait)."""
        extra = dict(headers or {})
        if json_body is not None:
            body = json.dumps(json_body).encode()
            extra["Content-Type"] = "application/json"
        response = self._send(method, build_url(path, query), body, self._headers(extra), timeout)
        data = response.read()
        check(response, data)
        if not data:
            return None
        if response.getheader("Content-Type").startswith("application/json"):
            return json.loads(data)
        return data

    def stream(self, method: str, path: str, *, query: dict[str, Any] | None = None,
               headers: dict[str, str] | None = None, body: bytes | None = None) -> Response:
        """A response to read as it comes (no timeout); close it when done."""
        response = self._send(method, build_url(path, query), body, self._headers(headers), None)
        if response.status >= 400:
            check(response, response.read())
        return response

    def close(self) -> None:
        self._closed = True
        if self._idle is not None:
            self._idle.close()
            self._idle = None


def _unix_connection(path: str) -> bare_socket:
    sock = bare_socket(AF_UNIX, SOCK_STREAM)
    try:
        sock.settimeout(TIMEOUT)
        sock.connect(path)
    except BaseException:
        sock.close()
        raise
    return sock


def _tcp_connection(address: str, port: int | None, *, tls: bool) -> socket.socket:
    """A TCP connection; with ``tls``, in TLS, the daemon's certificate checked against the
    system's CAs or SANDBOX_CA_CERT's."""
    import socket

    sock = socket.create_connection((address, port), timeout=TIMEOUT)
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if not tls:
            return sock
        import ssl

        context = ssl.create_default_context(cafile=os.environ.get("SANDBOX_CA_CERT") or None)
        return context.wrap_socket(sock, server_hostname=address)
    except BaseException:
        sock.close()
        raise


def build_url(path: str, query: dict[str, Any] | None) -> str:
    """``path?query``: None values left out, a list as the key repeated, booleans as true/false."""
    pairs = []
    for key, value in (query or {}).items():
        for item in value if isinstance(value, (list, tuple)) else (value,):
            if item is not None:
                pairs.append(f"{quote(str(key))}={quote(_query_value(item))}")
    return path + ("?" + "&".join(pairs) if pairs else "")


def _query_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def quote(text: str) -> str:
    """``text`` percent-encoded as UTF-8, every byte but the unreserved ones."""
    return "".join(chr(b) if b in UNRESERVED else f"%{b:02X}" for b in text.encode())


def segment(value: str) -> str:
    """A path segment, quoted (ids and names are checked by the daemon)."""
    return quote(value)


def check(response: Response, data: bytes) -> None:
    """DaemonError for an error status, with the daemon's message."""
    if response.status < 400:
        return
    try:
        body = json.loads(data)
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    message = body.get("message") or body.get("detail") or f"HTTP {response.status} {response.reason}"
    if not isinstance(message, str):
        message = json.dumps(message)
    raise DaemonError(message, status=response.status, exit_status=int(body.get("exit_status") or 125),
                      field=body.get("field"), kind=body.get("kind"))


def iter_lines(response: Response) -> Iterator[bytes]:
    """The lines of a streamed body (each with its newline), as they arrive."""
    while True:
        line = response.readline()
        if not line:
            return
        yield line


def iter_sse(response: Response) -> Iterator[tuple[str, str, str]]:
    """(event, id, data) for each Server-Sent Event of a streamed body."""
    event, ident = "message", ""
    data: list[str] = []
    for raw in iter_lines(response):
        line = raw.decode("utf-8").rstrip("\r\n")
        if not line:
            if data:
                yield event, ident, "\n".join(data)
            event, data = "message", []
            continue
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "data":
            data.append(value)
        elif name == "event":
            event = value
        elif name == "id":
            ident = value
