"""HTTP/1.1 on a socket, as much of RFC 9112 as a client of the daemon needs.

The CLI as a client starts a process per command: http.client would cost
more to import (it pulls email and ssl) than the request costs. A
``Connection`` is one socket (unix, TCP, or TCP wrapped in TLS by the caller)
that sends one request at a time and answers a ``Response``, whose body
is read as the server framed it: Content-Length, chunked, or up to the
close. A connection whose response was read to its end can carry the next
request (keep-alive); anything else closes it.

Errors are ``ProtocolError`` (a malformed or cut answer) and the socket's
OSError; the transport turns both into one line for the user. A socket is
anything with ``sendall`` and ``recv_into``: a ``socket.socket``, an
``ssl.SSLSocket``, or the bare ``_socket.socket`` the transport uses for a
unix socket.
"""

from __future__ import annotations

import io
import select
from collections.abc import Callable

TYPE_CHECKING = False  # as typing's, which the client's start does not import (see sandbox.client)

if TYPE_CHECKING:
    import socket
    from typing import Any

#: Bounds on what a server may send before the body: one line, and the headers.
MAX_LINE = 65536
MAX_HEADERS = 100
#: How much is read from the socket at a time.
READ_SIZE = 65536


class ProtocolError(Exception):
    """The server's answer is not HTTP/1.x, or ended before it was whole."""


class Connection:
    """One socket to a server; ``request`` sends one request and reads its response's head."""

    def __init__(self, sock: socket.socket | Any, host_header: str, *,
                 on_idle: Callable[[Connection], None] | None = None,
                 on_error: Callable[[Exception], Exception] | None = None) -> None:
        self.sock = sock
        self.host_header = host_header
        self.reader = io.BufferedReader(_SocketReader(sock), READ_SIZE)
        #: Called with the connection once a response was read to its end and the
        #: connection may carry another request (else it is closed).
        self.on_idle = on_idle
        #: What a failure while a body is read is raised as (else as it came).
        self.on_error = on_error

    def request(self, method: str, target: str, headers: dict[str, str],
                body: bytes | None = None) -> Response:
        """Send the request; the response once its head has come (its body is read from it)."""
        lines = [f"{method} {target} HTTP/1.1", f"Host: {self.host_header}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        if body is not None or method in ("POST", "PUT", "PATCH"):
            lines.append(f"Content-Length: {len(body or b'')}")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        self.sock.sendall(head + body if body else head)
        return read_response(self, method)

    def settimeout(self, timeout: float | None) -> None:
        self.sock.settimeout(timeout)

    def stale(self) -> bool:
        """Whether an idle connection was closed by the server (or has unasked-for bytes):
        then it must not carry another request."""
        try:
            readable, _, _ = select.select([self.sock], [], [], 0)
        except (OSError, ValueError):
            return True
        return bool(readable)

    def close(self) -> None:
        self.reader.close()
        self.sock.close()


class _SocketReader(io.RawIOBase):
    """A socket's bytes as a raw stream (``socket.makefile`` without the socket module:
    a bare ``_socket.socket`` has no makefile)."""

    def __init__(self, sock: Any) -> None:
        self.sock = sock

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        return self.sock.recv_into(buffer)


class Response:
    """A response whose head has been read; its body is read with ``read`` and ``readline``.

    Once the body has been read to its end, a connection that may carry
    another request goes to its ``on_idle``; any other is closed, as is one
    whose response is closed before its end.
    """

    def __init__(self, conn: Connection, status: int, reason: str, headers: dict[str, str],
                 framing: str, length: int) -> None:
        self.conn: Connection | None = conn
        self.status = status
        self.reason = reason
        self.headers = headers
        self.framing = framing  # "length", "chunked" or "close"
        self._left = length  # length: bytes to read; chunked: bytes left in the chunk
        self._buffer = bytearray()
        self._done = framing == "length" and length == 0
        self.keep_alive = False

    def getheader(self, name: str, default: str = "") -> str:
        return self.headers.get(name.lower(), default)

    def read(self, size: int = -1) -> bytes:
        """``size`` bytes (fewer at the end of the body), or all that is left with -1."""
        while not self._done and (size < 0 or len(self._buffer) < size):
            self._fill_or_fail()
        if size < 0:
            size = len(self._buffer)
        data = bytes(self._buffer[:size])
        del self._buffer[:size]
        self._finish_if_read()
        return data

    def readline(self) -> bytes:
        """The next line with its newline (without one at the end of the body); b"" at the end."""
        while not self._done and b"\n" not in self._buffer:
            self._fill_or_fail()
        end = self._buffer.find(b"\n") + 1 or len(self._buffer)
        line = bytes(self._buffer[:end])
        del self._buffer[:end]
        self._finish_if_read()
        return line

    def close(self) -> None:
        """Done with it: a connection with unread body is closed."""
        conn, self.conn = self.conn, None
        if conn is not None:
            conn.close()

    def _finish_if_read(self) -> None:
        if self._done and not self._buffer and self.conn is not None:
            conn, self.conn = self.conn, None
            if self.keep_alive and conn.on_idle is not None:
                conn.on_idle(conn)
            else:
                conn.close()

    def _fill_or_fail(self) -> None:
        """``_fill``; on a failure the connection is closed and the error raised as ``on_error``
        makes it."""
        on_error = self.conn.on_error if self.conn is not None else None
        try:
            self._fill()
        except (OSError, ProtocolError) as exc:
            self.close()
            if on_error is None:
                raise
            raise on_error(exc) from exc

    def _fill(self) -> None:
        """Read the next piece of the body into the buffer (marks the end when there is none)."""
        if self.conn is None:
            raise ProtocolError("the response was closed before its end")
        reader = self.conn.reader
        if self.framing == "chunked":
            self._fill_chunk(reader)
            return
        want = READ_SIZE if self.framing == "close" else min(self._left, READ_SIZE)
        data = reader.read1(want)
        if not data:
            if self.framing == "close":
                self._done = True
                return
            raise ProtocolError("the connection closed mid-response")
        self._buffer += data
        if self.framing == "length":
            self._left -= len(data)
            self._done = self._left == 0

    def _fill_chunk(self, reader) -> None:
        if self._left == 0:
            size_line = _read_line(reader)
            try:
                self._left = int(size_line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise ProtocolError(f"invalid chunk size {size_line[:40]!r}") from None
            if self._left < 0:
                raise ProtocolError(f"invalid chunk size {size_line[:40]!r}")
            if self._left == 0:
                while _read_line(reader) not in (b"\r\n", b"\n"):  # trailers, then the end
                    pass
                self._done = True
                return
        data = reader.read1(self._left)
        if not data:
            raise ProtocolError("the connection closed mid-response")
        self._buffer += data
        self._left -= len(data)
        if self._left == 0 and _read_line(reader) not in (b"\r\n", b"\n"):
            raise ProtocolError("a chunk did not end with CRLF")


def read_response(conn: Connection, method: str) -> Response:
    """The head of the next final response on ``conn`` (1xx interim responses are skipped)."""
    while True:
        status, reason, version = _status_line(conn.reader)
        headers = _headers(conn.reader)
        if not 100 <= status < 200 or status == 101:
            break
    framing, length = _framing(method, status, headers)
    response = Response(conn, status, reason, headers, framing, length)
    connection = headers.get("connection", "").lower()
    response.keep_alive = framing != "close" and "close" not in connection and (
        version == "HTTP/1.1" or "keep-alive" in connection)
    return response


def _status_line(reader) -> tuple[int, str, str]:
    line = reader.readline(MAX_LINE + 1)
    if not line:
        raise ProtocolError("the connection closed without a response")
    version, _, rest = line.decode("latin-1").rstrip("\r\n").partition(" ")
    code, _, reason = rest.partition(" ")
    if not version.startswith("HTTP/1.") or len(code) != 3 or not code.isdigit():
        raise ProtocolError(f"not an HTTP/1.x response: {line[:60]!r}")
    return int(code), reason.strip(), version


def _headers(reader) -> dict[str, str]:
    headers: dict[str, str] = {}
    for _ in range(MAX_HEADERS + 1):
        line = _read_line(reader)
        if line in (b"\r\n", b"\n"):
            return headers
        name, sep, value = line.decode("latin-1").partition(":")
        if not sep or not name or name != name.strip():
            raise ProtocolError(f"invalid header line {line[:60]!r}")
        key, value = name.lower(), value.strip()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    raise ProtocolError(f"more than {MAX_HEADERS} header lines")


def _read_line(reader) -> bytes:
    line = reader.readline(MAX_LINE + 1)
    if not line:
        raise ProtocolError("the connection closed mid-response")
    if len(line) > MAX_LINE:
        raise ProtocolError(f"a line longer than {MAX_LINE} bytes")
    return line


def _framing(method: str, status: int, headers: dict[str, str]) -> tuple[str, int]:
    """How the body is delimited (RFC 9112 section 6.3): ("length", n), ("chunked", 0) or ("close", 0)."""
    if method == "HEAD" or status in (101, 204, 304) or 100 <= status < 200:
        return "length", 0
    coding = headers.get("transfer-encoding")
    if coding is not None:
        if coding.lower().rsplit(",", 1)[-1].strip() != "chunked":
            return "close", 0
        return "chunked", 0
    length = headers.get("content-length")
    if length is None:
        return "close", 0
    values = {v.strip() for v in length.split(",")}
    if len(values) != 1 or not next(iter(values)).isdigit():
        raise ProtocolError(f"invalid Content-Length {length[:40]!r}")
    return "length", int(values.pop())
