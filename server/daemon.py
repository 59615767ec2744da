"""`sandbox daemon`: the API on a unix socket (and TCP), uvicorn, a clean start and stop.

At start it removes what a killed daemon (or any crashed process) left
(`sandbox gc` and job directories), then listens:

- on a unix socket, ``$SANDBOX_RUN_DIR/sandbox.sock`` by default (mode 0660,
  group ``sandbox`` when that group exists): who may open it is who may use
  the daemon, as with Docker's socket;
- with ``--listen tcp://ADDR:PORT``, on TCP too, where every request needs a
  bearer token (TLS with ``--tls-cert``/``--tls-key``).

SIGTERM or SIGINT: the sandboxes it holds are killed and torn down, jobs it
runs in-process cancelled, open connections given a few seconds, the socket
removed; jobs in Redis stay there for the workers. SIGKILL: the containers
it holds die with it (they die with their owner) and the next start's gc
removes the rest; jobs in Redis are not touched. Detached sandboxes are
their supervisors' (``server.detached``): both leave them running.
"""

from __future__ import annotations

import asyncio
import contextlib
import grp
import logging
import os
import signal
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import uvicorn

from sandbox import SandboxError, collect_garbage, run_dir

log = logging.getLogger("sandbox.daemon")
SOCKET_NAME = "sandbox.sock"
GROUP = "sandbox"
GRACE = 5  # seconds open connections get at shutdown


@dataclass(frozen=True)
class DaemonConfig:
    socket_path: Path
    listen: tuple[str, int] | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    redis_url: str | None = None
    job_concurrency: int = 2
    log_level: str = "warning"


def default_socket() -> Path:
    return run_dir() / SOCKET_NAME


def parse_listen(text: str) -> tuple[str, int]:
    """``tcp://ADDR:PORT`` -> (addr, port)."""
    scheme, sep, rest = text.partition("://")
    addr, _, port = rest.rpartition(":")
    if scheme != "tcp" or not sep or not addr or not port.isdigit() or not 0 < int(port) < 65536:
        raise SandboxError(f"invalid --listen {text!r}: expected tcp://ADDR:PORT, "
                           "e.g. tcp://127.0.0.1:2375")
    return addr.strip("[]"), int(port)


def cleanup_host() -> None:
    """What a killed daemon or any crashed process left: `sandbox gc`, and job directories."""
    from jobs import collect_job_dirs

    report = collect_garbage()
    for item in report.removed:
        log.info("gc: removed %s left by a dead process", item)
    for err in report.errors:
        log.warning("gc: %s", err)
    for job_id in collect_job_dirs():
        log.info("gc: removed the directory of job %s left by a dead process", job_id)
    from .classes.table import collect as collect_classes

    for name in collect_classes():
        log.info("gc: removed class %s left by a dead daemon", name)


def unix_listener(path: Path) -> socket.socket:
    """A listening unix socket at ``path``, mode 0660, group ``sandbox`` if it exists.

    A socket file nobody answers on (a killed daemon's) is replaced; one a
    live daemon answers on is an error.
    """
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
    if path.exists() or path.is_symlink():
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(str(path))
            raise SandboxError(f"a daemon already listens on {path}",
                               hint="stop it first, or give another --socket")
        except (ConnectionRefusedError, FileNotFoundError):
            path.unlink(missing_ok=True)
        finally:
            probe.close()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o117)  # never a moment with looser rights than 0660
    try:
        sock.bind(str(path))
    finally:
        os.umask(old)
    os.chmod(path, 0o660)
    with contextlib.suppress(KeyError):
        os.chown(path, -1, grp.getgrnam(GROUP).gr_gid)
    sock.listen(1024)
    return sock


def tcp_listener(addr: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in addr else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((addr, port))
    except OSError as exc:
        sock.close()
        raise SandboxError(f"cannot listen on tcp://{addr}:{port}: {exc.strerror}") from exc
    sock.listen(1024)
    return sock


def serve(config: DaemonConfig) -> int:
    """Run the daemon until SIGTERM/SIGINT; 0 after a clean stop."""
    from .app import create_app
    from .engine import Engine

    cleanup_host()
    listeners = [("unix", unix_listener(config.socket_path))]
    try:
        if config.listen:
            listeners.append(("tcp", tcp_listener(*config.listen)))
        app = create_app(make_engine=partial(Engine.start, redis_url=config.redis_url,
                                             job_concurrency=config.job_concurrency))
        asyncio.run(_serve(app, listeners, config))
    finally:
        for _kind, sock in listeners:
            sock.close()
        config.socket_path.unlink(missing_ok=True)
    return 0


async def _serve(app, listeners: list[tuple[str, socket.socket]], config: DaemonConfig) -> None:
    from .deps import mark_transport

    servers = []
    for index, (kind, sock) in enumerate(listeners):
        tls = kind == "tcp" and config.tls_cert
        uv_config = uvicorn.Config(
            mark_transport(app, kind), lifespan="on" if index == 0 else "off",
            log_level=config.log_level, access_log=False, timeout_graceful_shutdown=GRACE,
            ssl_certfile=config.tls_cert if tls else None,
            ssl_keyfile=config.tls_key if tls else None, ws="websockets-sansio")
        servers.append((_Server(uv_config), sock))
    app.state.public_url = next((_public_url(sock, config) for kind, sock in listeners
                                 if kind == "tcp"), "")
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, partial(_stop, app, [s for s, _ in servers]))
    where = ", ".join(_describe(kind, sock, config) for kind, sock in listeners)
    log.warning("sandbox daemon listening on %s (jobs: %s)", where,
                "redis" if config.redis_url else "in-process")
    await asyncio.gather(*(server.serve(sockets=[sock]) for server, sock in servers))


def _describe(kind: str, sock: socket.socket, config: DaemonConfig) -> str:
    if kind == "unix":
        return f"unix://{sock.getsockname()}"
    host, port = sock.getsockname()[:2]
    return f"{'https' if config.tls_cert else 'tcp'}://{host}:{port}"


def _public_url(sock: socket.socket, config: DaemonConfig) -> str:
    """Where a browser reaches the TCP listener (the console's links for students)."""
    host, port = sock.getsockname()[:2]
    if host in ("0.0.0.0", "::"):
        host = socket.getfqdn()
    elif ":" in host:
        host = f"[{host}]"
    return f"{'https' if config.tls_cert else 'http'}://{host}:{port}"


def _stop(app, servers: list) -> None:
    """SIGTERM/SIGINT: end the sandboxes now (their waiters return), then stop serving."""
    log.warning("sandbox daemon stopping: ending its sandboxes and in-process jobs")
    engine = getattr(app.state, "engine", None)

    async def stop() -> None:
        if engine is not None:
            await asyncio.to_thread(engine.shutdown)
        for server in servers:
            server.should_exit = True

    asyncio.get_running_loop().create_task(stop())


class _Server(uvicorn.Server):
    """uvicorn's Server without its own signal handling (the daemon's covers every listener)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield
