"""The daemon's client on the wire (no root): requests as sent, responses as framed, errors as
one line. A scripted server on a unix socket answers each request with the bytes a test gives
(a daemon, a proxy in front of one, or one that dies mid-answer)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from sandbox.client import Client, DaemonError, Transport
from sandbox.client.api.sandboxes import frames
from sandbox.client.http1 import MAX_HEADERS
from sandbox.client.transport import build_url, iter_lines, iter_sse, segment

from .registry_peers import need

REPO = Path(__file__).resolve().parent.parent

#: An answer: the bytes to send back, or a function of the connection (to send and close).
Answer = bytes | Callable[[socket.socket], None]


class Scripted:
    """A server on a unix socket (or on TCP, with ``tls`` a context: in TLS): each request it
    reads is kept (head, body) and answered with the next of ``answers``; after an answer that
    is a function, the connection closes."""

    def __init__(self, path: Path | None, answers: list[Answer], tls=None) -> None:
        self.answers = list(answers)
        self.requests: list[tuple[bytes, bytes]] = []
        self.connections = 0
        self.tls = tls
        if path is not None:
            self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.listener.bind(str(path))
            self.host = f"unix://{path}"
        else:
            self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self.listener.bind(("127.0.0.1", 0))
            self.port = self.listener.getsockname()[1]
            self.host = f"{'https' if tls else 'tcp'}://127.0.0.1:{self.port}"
        self.listener.listen(8)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while self.answers:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            try:
                if self.tls is not None:
                    conn = self.tls.wrap_socket(conn, server_side=True)
            except OSError:  # the client refused the certificate
                conn.close()
                continue
            with conn:
                self._answer(conn)

    def _answer(self, conn: socket.socket) -> None:
        reader = conn.makefile("rb")
        try:
            while self.answers:
                head = b""
                while not head.endswith(b"\r\n\r\n"):
                    line = reader.readline()
                    if not line:
                        return
                    head += line
                length = next((int(h.split(b":")[1]) for h in head.split(b"\r\n")
                               if h.lower().startswith(b"content-length:")), 0)
                self.requests.append((head, reader.read(length)))
                answer = self.answers.pop(0)
                if callable(answer):
                    answer(conn)
                    return
                conn.sendall(answer)
        finally:
            reader.close()

    def close(self) -> None:
        self.answers.clear()
        self.listener.close()
        self.thread.join(10)


@pytest.fixture
def serve(tmp_path):
    servers: list[Scripted] = []

    def start(*answers: Answer, tcp: bool = False, tls=None) -> Scripted:
        path = None if tcp or tls else tmp_path / f"d{len(servers)}.sock"
        server = Scripted(path, list(answers), tls)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


def response(status: str, body: bytes = b"", *, headers: str = "",
             content_type: str = "application/json") -> bytes:
    return (f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
            f"{headers}\r\n").encode() + body


def chunked(status: str, *chunks: bytes, content_type: str = "text/plain") -> bytes:
    body = b"".join(b"%x;ext=1\r\n%s\r\n" % (len(c), c) for c in chunks)
    return (f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nTransfer-Encoding: chunked\r\n\r\n"
            ).encode() + body + b"0\r\nX-Trailer: t\r\n\r\n"


def closing_after(data: bytes) -> Callable[[socket.socket], None]:
    return lambda conn: conn.sendall(data)


def test_a_request_is_framed_as_http_1_1_with_its_json_body_and_token(serve):
    server = serve(response("201 Created", b'{"id": "abc"}'))
    client = Client(server.host, token="sbx_secret")
    try:
        created = client.sandboxes.create({"image": "busybox", "command": ["echo", "é"]},
                                          start=True)
    finally:
        client.close()
    assert created == {"id": "abc"}
    head, body = server.requests[0]
    lines = head.decode().split("\r\n")
    assert lines[0] == "POST /v1/sandboxes?start=true&remove=false&stdin=false HTTP/1.1"
    fields = dict(line.split(": ", 1) for line in lines[1:] if line)
    assert fields["Host"] == "localhost" and fields["Authorization"] == "Bearer sbx_secret"
    assert fields["Content-Type"] == "application/json" and fields["Accept"] == "application/json"
    assert int(fields["Content-Length"]) == len(body)
    assert json.loads(body) == {"image": "busybox", "command": ["echo", "é"]}


def test_requests_share_one_kept_connection_and_a_204_has_no_body(serve):
    server = serve(response("204 No Content"), response("200 OK", b'[]'),
                   response("200 OK", b'{"ok": true}'))
    client = Client(server.host)
    try:
        assert client.sandboxes.start("a") is None
        assert client.sandboxes.list() == []
        assert client.sandboxes.wait("a") == {"ok": True}  # no timeout: the same connection
    finally:
        client.close()
    assert server.connections == 1 and len(server.requests) == 3
    assert server.requests[0][0].startswith(b"POST /v1/sandboxes/a/start HTTP/1.1\r\n")
    assert b"Content-Length: 0\r\n" in server.requests[0][0]


def test_a_connection_the_daemon_closed_while_idle_is_replaced(serve):
    server = serve(response("200 OK", b"[]", headers="Connection: close\r\n"),
                   response("200 OK", b"[1]"))
    transport = Transport(server.host)
    try:
        assert transport.request("GET", "/v1/a") == []
        assert transport.request("GET", "/v1/b") == [1]
    finally:
        transport.close()
    assert server.connections == 2


def test_a_kept_connection_closed_by_the_daemon_is_seen_before_it_is_used(serve):
    sent = response("200 OK", b"[]")
    server = serve(closing_after(sent), response("200 OK", b"[2]"))
    transport = Transport(server.host)
    try:
        assert transport.request("GET", "/v1/a") == []
        threading.Event().wait(0.05)  # the daemon closes the idle connection meanwhile
        assert transport.request("GET", "/v1/b") == [2]
    finally:
        transport.close()
    assert server.connections == 2


def test_a_chunked_log_is_read_across_chunks_then_the_connection_is_reused(serve):
    frame = bytes([1, 0, 0, 0, 0, 0, 0, 6]) + b"hello\n" + bytes([2, 0, 0, 0, 0, 0, 0, 4]) + b"err\n"
    server = serve(chunked("200 OK", frame[:5], frame[5:11], frame[11:]),
                   response("200 OK", b'{"exit_code": 0}'))
    client = Client(server.host)
    try:
        stream = client.sandboxes.logs("a", follow=True)
        assert list(frames(stream)) == [("stdout", b"hello\n"), ("stderr", b"err\n")]
        stream.close()
        assert client.sandboxes.wait("a") == {"exit_code": 0}
    finally:
        client.close()
    assert server.connections == 1


def test_lines_and_sse_events_come_whole_whatever_the_chunks(serve):
    events = b"id: 1\nevent: out\ndata: {\"a\": 1}\n\n: comment\nid: 2\ndata: x\ndata: y\n\n"
    server = serve(chunked("200 OK", b"one\ntw", b"o\n", b"three"),
                   chunked("200 OK", *[events[i:i + 7] for i in range(0, len(events), 7)]))
    transport = Transport(server.host)
    try:
        assert list(iter_lines(transport.stream("GET", "/l"))) == [b"one\n", b"two\n", b"three"]
        assert list(iter_sse(transport.stream("GET", "/e"))) == [
            ("out", "1", '{"a": 1}'), ("message", "2", "x\ny")]
    finally:
        transport.close()


def test_a_body_without_length_is_read_to_the_close(serve):
    server = serve(closing_after(b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n[3]"),
                   response("200 OK", b"[4]"))
    transport = Transport(server.host)
    try:
        assert transport.request("GET", "/a") == [3]
        assert transport.request("GET", "/b") == [4]
    finally:
        transport.close()
    assert server.connections == 2


def test_an_interim_100_response_is_skipped(serve):
    server = serve(b"HTTP/1.1 100 Continue\r\n\r\n" + response("200 OK", b'{"x": 1}'))
    transport = Transport(server.host)
    try:
        assert transport.request("POST", "/a", json_body={}) == {"x": 1}
    finally:
        transport.close()


def test_a_4xx_carries_the_daemons_message_field_and_exit_status(serve):
    body = json.dumps({"message": "invalid memory 'lots': expected a size", "field": "memory",
                       "exit_status": 125, "kind": "SpecError"}).encode()
    server = serve(response("400 Bad Request", body), response("404 Not Found", b'{"detail": "Not Found"}'))
    transport = Transport(server.host)
    try:
        with pytest.raises(DaemonError) as bad:
            transport.request("POST", "/v1/sandboxes", json_body={})
        with pytest.raises(DaemonError) as missing:
            transport.request("GET", "/v1/nothing")
    finally:
        transport.close()
    assert (str(bad.value), bad.value.status, bad.value.field, bad.value.exit_status,
            bad.value.kind) == ("invalid memory 'lots': expected a size", 400, "memory", 125, "SpecError")
    assert (str(missing.value), missing.value.status) == ("Not Found", 404)


def test_a_proxys_non_json_502_is_its_status_line(serve):
    server = serve(response("502 Bad Gateway", b"<html>bad gateway</html>", content_type="text/html"),
                   chunked("503 Service Unavailable", b"down"))
    transport = Transport(server.host)
    try:
        with pytest.raises(DaemonError, match=r"^HTTP 502 Bad Gateway$") as err:
            transport.request("GET", "/v1/health")
        with pytest.raises(DaemonError, match=r"^HTTP 503 Service Unavailable$"):
            transport.stream("GET", "/v1/sandboxes/a/logs")
    finally:
        transport.close()
    assert err.value.status == 502 and err.value.exit_status == 125


def test_a_daemon_that_closes_mid_response_is_one_error_line(serve):
    server = serve(closing_after(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"a\""),
                   closing_after(b""),
                   closing_after(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                                 b"10\r\n\x01\x00\x00\x00\x00\x00\x00\x03ab"))
    transport = Transport(server.host)
    try:
        with pytest.raises(DaemonError) as cut:
            transport.request("GET", "/v1/a")
        with pytest.raises(DaemonError) as silent:
            transport.request("GET", "/v1/b")
        stream = transport.stream("GET", "/v1/sandboxes/a/logs")
        with pytest.raises(DaemonError) as mid_stream:
            list(frames(stream))
    finally:
        transport.close()
    where = f"the sandbox daemon at {server.host}"
    assert str(cut.value) == f"lost the connection to {where}: the connection closed mid-response"
    assert str(silent.value) == f"cannot reach {where}: the connection closed without a response"
    assert str(mid_stream.value) == f"lost the connection to {where}: the connection closed mid-response"
    assert {cut.value.kind, silent.value.kind, mid_stream.value.kind} == {"unreachable"}
    assert "\n" not in str(cut.value) + str(silent.value) + str(mid_stream.value)


@pytest.mark.parametrize("answer, why", [
    (b"SSH-2.0-OpenSSH_9.2\r\n", "not an HTTP/1.x response"),
    (b"HTTP/1.1 200 OK\r\nbroken header\r\n\r\n", "invalid header line"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 1, 2\r\n\r\n", "invalid Content-Length"),
    (b"HTTP/1.1 200 OK\r\n" + b"X-A: b\r\n" * (MAX_HEADERS + 1) + b"\r\n", "header lines"),
])
def test_a_peer_that_is_no_http_server_is_refused(serve, answer, why):
    server = serve(closing_after(answer))
    transport = Transport(server.host)
    try:
        with pytest.raises(DaemonError, match=why) as err:
            transport.request("GET", "/v1/health")
    finally:
        transport.close()
    assert err.value.kind == "unreachable"


def test_a_bad_chunk_is_an_error(serve):
    server = serve(closing_after(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"))
    transport = Transport(server.host)
    try:
        with pytest.raises(DaemonError, match="invalid chunk size"):
            transport.request("GET", "/v1/a")
    finally:
        transport.close()


def test_on_tcp_the_host_header_names_the_daemon_and_the_token_goes_along(serve):
    server = serve(response("200 OK", b'{"version": "1"}'), tcp=True)
    client = Client(server.host, token="sbx_t")
    try:
        assert client.system.version() == {"version": "1"}
    finally:
        client.close()
    head = server.requests[0][0].decode()
    assert head.startswith("GET /v1/version HTTP/1.1\r\n")
    assert f"\r\nHost: 127.0.0.1:{server.port}\r\n" in head
    assert "\r\nAuthorization: Bearer sbx_t\r\n" in head


@pytest.fixture
def certificate(tmp_path):
    """A self-signed certificate for 127.0.0.1: (cert file, key file)."""
    need("openssl", "openssl")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
                    "-out", str(cert), "-days", "1", "-subj", "/CN=sandbox-test-daemon",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
    return cert, key


def test_tls_checks_the_daemons_certificate_against_SANDBOX_CA_CERT(serve, certificate,
                                                                     monkeypatch):
    import ssl

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*certificate)
    server = serve(response("200 OK", b'{"status": "ok"}'), response("200 OK", b"{}"), tls=context)
    monkeypatch.delenv("SANDBOX_CA_CERT", raising=False)
    untrusted = Transport(server.host)
    with pytest.raises(DaemonError, match="certificate verify failed") as err:
        untrusted.request("GET", "/v1/health")
    assert err.value.kind == "unreachable" and "\n" not in str(err.value)
    monkeypatch.setenv("SANDBOX_CA_CERT", str(certificate[0]))
    trusted = Transport(server.host)
    try:
        assert trusted.request("GET", "/v1/health") == {"status": "ok"}
        assert trusted.request("GET", "/v1/health") == {}
    finally:
        trusted.close()
    assert server.connections == 2  # the refused handshake, then one kept connection


def test_no_such_socket_is_one_line(tmp_path):
    transport = Transport(f"unix://{tmp_path}/none.sock")
    with pytest.raises(DaemonError) as err:
        transport.request("GET", "/v1/health")
    assert str(err.value) == (f"cannot reach the sandbox daemon at unix://{tmp_path}/none.sock: "
                              "No such file or directory")
    assert err.value.exit_status == 125 and err.value.kind == "unreachable"


def test_queries_and_segments_are_percent_encoded():
    assert build_url("/v1/x", {"a": True, "b": False, "c": None, "t": ["x y", "é&="], "n": 2.5}) == \
        "/v1/x?a=true&b=false&t=x%20y&t=%C3%A9%26%3D&n=2.5"
    assert build_url("/v1/x", {"c": None}) == "/v1/x"
    assert segment("a/b c") == "a%2Fb%20c" and segment("busybox:1.36") == "busybox%3A1.36"


def cli(*args: str, host: str | None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("SANDBOX_HOST", "SANDBOX_TOKEN")}
    env.update(PYTHONPATH=str(REPO), COLUMNS="100")
    if host is not None:
        env["SANDBOX_HOST"] = host
    return subprocess.run([sys.executable, "-m", "sandbox", *args], env=env, capture_output=True,
                          timeout=60)


@pytest.mark.parametrize("host, message", [
    ("unix:///nonexistent/sandbox.sock",
     "cannot reach the sandbox daemon at unix:///nonexistent/sandbox.sock: No such file or directory"),
    ("tcp://127.0.0.1:1", "cannot reach the sandbox daemon at tcp://127.0.0.1:1: Connection refused"),
    ("foo", "invalid host 'foo': expected unix:///PATH, tcp://HOST:PORT or https://HOST:PORT"),
    ("tcp://x", "invalid host 'tcp://x': expected tcp://HOST:PORT"),
    ("ftp://x:1", "invalid host 'ftp://x:1': expected unix://, tcp:// or https://"),
])
def test_the_cli_says_in_one_line_why_a_host_cannot_be_used(host, message):
    for args in (("run", "busybox", "--", "true"), ("ps",)):
        result = cli(*args, host=host)
        assert (result.returncode, result.stdout, result.stderr.decode()) == \
            (125, b"", f"sandbox: error: {message}\n"), args


def test_the_cli_answers_through_the_daemon_as_here_before_it_is_reached():
    """Help and usage errors come from the same parser, whether or not a host is set, and
    whatever precedes the verb."""
    cases = [("--help",), ("run", "--help"), ("run",), ("run", "--bogus", "busybox"), ("runn",),
             ("--version",), ("-H", "unix:///nonexistent.sock", "run", "--help"),
             ("--host=unix:///nonexistent.sock", "run", "--nope", "busybox")]
    for args in cases:
        here = cli(*args, host=None)
        there = cli(*args, host="unix:///nonexistent.sock")
        assert (there.returncode, there.stdout, there.stderr) == \
            (here.returncode, here.stdout, here.stderr), args
    assert cli("run", "--help", host=None).stdout.startswith(b"usage: sandbox run [-h]")
    bad = cli("run", "--bogus", "busybox", host=None)
    assert (bad.returncode, bad.stderr) == (
        125, b"sandbox: error: unrecognized arguments: --bogus (see `sandbox --help`)\n")


def test_the_cli_as_a_client_loads_neither_the_engine_nor_http_client(serve, tmp_path):
    """What `sandbox run` through a daemon imports: the client, never the engine's spec,
    runtime or a web client (they cost more to import than the request)."""
    def framed(kind: int, data: bytes) -> bytes:
        return bytes([kind, 0, 0, 0]) + len(data).to_bytes(4, "big") + data

    created = framed(3, b'{"id": "abc", "name": null, "status": "running", "warnings": []}')
    ended = framed(4, b'{"id": "abc", "exit_code": 3, "result": null, "message": null, '
                   b'"summary": null, "error": null}')
    # the whole run is one request: what was made, the output, how it ended
    server = serve(chunked("201 Created", created, framed(1, b"hi\n"), ended,
                           content_type="application/vnd.docker.multiplexed-stream"))
    probe = tmp_path / "probe.py"
    probe.write_text("import json, runpy, sys\n"
                     "sys.argv = ['sandbox', 'run', 'busybox', '--', 'true']\n"
                     "try:\n    runpy.run_module('sandbox', run_name='__main__')\n"
                     "except SystemExit as end:\n"
                     "    print(end.code, json.dumps(sorted(sys.modules)), file=sys.stderr)\n")
    env = dict(os.environ, PYTHONPATH=str(REPO), SANDBOX_HOST=server.host)
    # -S: what site imports here (this host's .pth files import typing) is not the client's
    result = subprocess.run([sys.executable, "-S", str(probe)], env=env, capture_output=True,
                            timeout=60)
    assert result.stdout == b"hi\n"
    code, _, modules = result.stderr.decode().partition(" ")
    assert code == "3"
    loaded = set(json.loads(modules))
    assert {"sandbox.client", "sandbox.cli.run"} <= loaded
    for heavy in ("sandbox.spec", "sandbox.runtime", "sandbox.process", "sandbox.images",
                  "http.client", "email", "ssl", "socket", "httpx", "sandbox.client.api.jobs",
                  "typing"):
        assert heavy not in loaded, heavy
