"""`sandbox daemon` and `sandbox daemon token create|ls|rm`."""

from __future__ import annotations

import argparse
import os


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "daemon", help="serve the REST API (sandboxes, images, networks, jobs)",
        description="Serve the API under /v1 on a unix socket (default "
        "$SANDBOX_RUN_DIR/sandbox.sock, mode 0660, group `sandbox` if it exists) and, with "
        "--listen, on TCP, where every request needs a bearer token (see `sandbox daemon "
        "token create`). Removes what crashed processes left at start (`sandbox gc`); "
        "SIGTERM ends its sandboxes and removes the socket. Jobs go to Redis with --redis "
        "(or SANDBOX_REDIS_URL), else run in the daemon. The CLI talks to it with "
        "SANDBOX_HOST=unix:///PATH or --host.",
        epilog="example: sandbox daemon --listen tcp://0.0.0.0:2375 --tls-cert c.pem --tls-key k.pem")
    p.add_argument("--socket", metavar="PATH", help="unix socket (default $SANDBOX_RUN_DIR/sandbox.sock)")
    p.add_argument("--listen", metavar="tcp://ADDR:PORT", help="also listen on TCP (token required)")
    p.add_argument("--tls-cert", metavar="PEM", help="TLS certificate for --listen")
    p.add_argument("--tls-key", metavar="PEM", help="TLS private key for --listen")
    p.add_argument("--redis", metavar="URL", help="Redis URL for jobs (default: SANDBOX_REDIS_URL; "
                   "none: jobs run in the daemon)")
    p.add_argument("--jobs", type=int, default=2, metavar="N",
                   help="in-process jobs run at once without Redis (default 2)")
    p.add_argument("--log-level", default="warning", choices=("debug", "info", "warning", "error"))
    p.set_defaults(handler=handle, remote="local")
    verbs = p.add_subparsers(dest="daemon_verb", metavar="VERB", parser_class=sub._parser_class)
    q = verbs.add_parser("token", help="manage the bearer tokens of the TCP listener")
    tverbs = q.add_subparsers(dest="token_verb", metavar="VERB", parser_class=sub._parser_class)
    tverbs.required = True
    t = tverbs.add_parser("create", help="make a token (printed once, stored hashed)",
                          description="Make a bearer token and print it (the daemon stores only "
                          "its hash). Scopes: read (see what it made, images, networks), run "
                          "(sandboxes, networks), jobs (submit, cancel), images (remove; build, "
                          "push), mount-host (bind host paths), admin (everything, and what "
                          "other tokens made). Default: read.")
    t.add_argument("--name", required=True)
    t.add_argument("--scope", action="append", default=[], metavar="SCOPE")
    t.set_defaults(handler=token_create, remote="local")
    t = tverbs.add_parser("ls", help="list tokens (names and scopes)")
    t.set_defaults(handler=token_ls, remote="local")
    t = tverbs.add_parser("rm", help="revoke a token")
    t.add_argument("name")
    t.set_defaults(handler=token_rm, remote="local")


def handle(args: argparse.Namespace) -> int:
    import logging
    from pathlib import Path

    from jobs import redis_url
    from sandbox import SandboxError

    from .daemon import DaemonConfig, default_socket, parse_listen, serve

    if args.daemon_verb is not None:
        raise SandboxError("usage: sandbox daemon token create|ls|rm")
    if bool(args.tls_cert) != bool(args.tls_key) or (args.tls_cert and not args.listen):
        raise SandboxError("--tls-cert and --tls-key go together, with --listen")
    if args.jobs < 1:
        raise SandboxError(f"invalid --jobs {args.jobs}: expected 1 or more")
    logging.basicConfig(level=args.log_level.upper(), format="sandbox daemon: %(message)s")
    config = DaemonConfig(socket_path=Path(args.socket) if args.socket else default_socket(),
                          listen=parse_listen(args.listen) if args.listen else None,
                          tls_cert=args.tls_cert, tls_key=args.tls_key,
                          redis_url=redis_url(args.redis), job_concurrency=args.jobs,
                          log_level=args.log_level)
    os.environ.pop("SANDBOX_HOST", None)  # the daemon runs the engine itself
    return serve(config)


def token_create(args: argparse.Namespace) -> int:
    from .tokens import create

    print(create(args.name, args.scope))
    return 0


def token_ls(args: argparse.Namespace) -> int:
    import time

    from .tokens import load

    rows = [(t.name, ",".join(t.scopes), time.strftime("%Y-%m-%d %H:%M", time.localtime(t.created)))
            for t in load()]
    header = ("NAME", "SCOPES", "CREATED")
    widths = [max(len(x) for x in col) for col in zip(header, *rows)]
    for row in (header, *rows):
        print("  ".join(x.ljust(w) for x, w in zip(row, widths)).rstrip())
    return 0


def token_rm(args: argparse.Namespace) -> int:
    from .tokens import revoke

    revoke(args.name)
    print(f"revoked {args.name}")
    return 0
