"""HTTP/1.1 to a daemon over its unix socket or TCP (plain or TLS), with http.client.

http.client and the standard library only: the CLI as a client must start
fast, and httpx (or the engine) would cost more than the request itself.
One keep-alive connection per Transport; a stream (logs, events) takes a
connection of its own, closed when the stream is.

Hosts, as SANDBOX_HOST or ``--host`` take them:

- ``unix:///run/sandbox/sandbox.sock`` (a path; ``unix://`` alone is the default socket)
- ``tcp://HOST:PORT`` (plain HTTP; the daemon asks a bearer token: SANDBOX_TOKEN)
- ``https://HOST:PORT`` or ``tls://HOST:PORT`` (TLS; SANDBOX_CA_CERT names a CA file
  for a daemon whose certificate no system CA signed)
"""

from __future__ import annotations

import http.client
import json
import os
import socket
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, urlencode

DEFAULT_SOCKET = "/run/sandbox/sandbox.sock"
#: How long a plain request may take; streams and waits have none.
TIMEOUT = 60.0


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


class UnixConnection(http.client.HTTPConnection):
    """http.client over a unix socket (the Host header says ``localhost``)."""

    def __init__(self, path: str, timeout: float | None = TIMEOUT) -> None:
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


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
        self._conn: http.client.HTTPConnection | None = None

    def _connect(self, timeout: float | None) -> http.client.HTTPConnection:
        if self.scheme == "unix":
            return UnixConnection(self.address, timeout=timeout)
        if self.scheme == "https":
            import ssl

            context = ssl.create_default_context(cafile=os.environ.get("SANDBOX_CA_CERT") or None)
            return http.client.HTTPSConnection(self.address, self.port, timeout=timeout,
                                               context=context)
        return http.client.HTTPConnection(self.address, self.port, timeout=timeout)

    def _headers(self, extra: dict[str, str] | None) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        headers.update(extra or {})
        return headers

    def _send(self, conn: http.client.HTTPConnection, method: str, url: str, body: bytes | None,
              headers: dict[str, str]) -> http.client.HTTPResponse:
        try:
            conn.request(method, url, body=body, headers=headers)
            return conn.getresponse()
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            raise DaemonError(f"cannot reach the sandbox daemon at {self.host}: "
                              f"{getattr(exc, 'strerror', None) or exc}",
                              kind="unreachable") from exc

    def request(self, method: str, path: str, *, query: dict[str, Any] | None = None,
                json_body: Any = None, body: bytes | None = None,
                headers: dict[str, str] | None = None, timeout: float | None = TIMEOUT) -> Any:
        """One request on the kept connection; the decoded JSON answer (None for 204)."""
        url = build_url(path, query)
        extra = dict(headers or {})
        if json_body is not None:
            body = json.dumps(json_body).encode()
            extra["Content-Type"] = "application/json"
        if self._conn is None or timeout != TIMEOUT:
            conn = self._connect(timeout)
            if timeout == TIMEOUT:
                self._conn = conn
        else:
            conn = self._conn
        try:
            response = self._send(conn, method, url, body, self._headers(extra))
            data = response.read()
        except DaemonError:
            self._conn = None
            raise
        finally:
            if conn is not self._conn:
                conn.close()
        check(response, data)
        if not data:
            return None
        if response.getheader("Content-Type", "").startswith("application/json"):
            return json.loads(data)
        return data

    def stream(self, method: str, path: str, *, query: dict[str, Any] | None = None,
               headers: dict[str, str] | None = None,
               body: bytes | None = None) -> http.client.HTTPResponse:
        """A response to read as it comes (its own connection, no timeout); close it when done."""
        conn = self._connect(None)
        response = self._send(conn, method, build_url(path, query), body, self._headers(headers))
        if response.status >= 400:
            data = response.read()
            conn.close()
            check(response, data)
        return response

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def build_url(path: str, query: dict[str, Any] | None) -> str:
    items = {k: _query_value(v) for k, v in (query or {}).items() if v is not None}
    return path + ("?" + urlencode(items, doseq=True) if items else "")


def _query_value(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


def segment(value: str) -> str:
    """A path segment, quoted (ids and names are checked by the daemon)."""
    return quote(value, safe="")


def check(response: http.client.HTTPResponse, data: bytes) -> None:
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


def iter_lines(response: http.client.HTTPResponse) -> Iterator[bytes]:
    """The lines of a streamed body (each with its newline), as they arrive."""
    while True:
        line = response.readline()
        if not line:
            return
        yield line


def iter_sse(response: http.client.HTTPResponse) -> Iterator[tuple[str, str, str]]:
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
