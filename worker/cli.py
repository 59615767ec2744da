"""`sandbox worker`: run RQ workers that execute jobs in sandboxes."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "worker", help="run workers that execute queued jobs",
        description="Take jobs from the queue (Redis + RQ) and run each in sandboxes, "
        "streaming their logs back. Removes what crashed workers left on this machine "
        "at start; retries an unreachable Redis with backoff; a Redis that refuses the "
        "URL's password ends it (status 125).")
    p.add_argument("--redis", metavar="URL", help="Redis URL (default: SANDBOX_REDIS_URL)")
    p.add_argument("--queue", action="append", metavar="NAME",
                   help="queue to take jobs from, in priority order (default: default)")
    p.add_argument("--concurrency", type=int, default=1, metavar="N",
                   help="worker processes to run (default 1)")
    p.add_argument("--burst", action="store_true", help="exit once the queues are empty")
    p.add_argument("--name", help="worker name (default: RQ's)")
    p.add_argument("--no-cleanup", action="store_true", help=argparse.SUPPRESS)  # a supervisor did it
    p.set_defaults(handler=handle, remote="local")


def handle(args: argparse.Namespace) -> int:
    from jobs.client import DEFAULT_QUEUE, redis_url
    from sandbox import SandboxError

    from .main import configure_logging, serve, supervise

    url = redis_url(args.redis)
    if not url:
        raise SandboxError("sandbox worker needs a Redis URL: --redis URL or SANDBOX_REDIS_URL")
    if args.concurrency < 1:
        raise SandboxError(f"invalid --concurrency {args.concurrency}: expected 1 or more")
    queues = args.queue or [DEFAULT_QUEUE]
    configure_logging()
    if args.concurrency > 1:
        return supervise(url, queues, burst=args.burst, concurrency=args.concurrency)
    return serve(url, queues, burst=args.burst, name=args.name, cleanup=not args.no_cleanup)
