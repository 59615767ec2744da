"""`sandbox image bootstrap debian:SUITE`: a Debian base image made with debootstrap."""

from __future__ import annotations

import argparse
import os

#: Where the layer is kept between runs unless --cache says otherwise (SANDBOX_BOOTSTRAP_CACHE).
DEFAULT_CACHE = "/var/cache/sandbox/bootstrap"


def register(isub: argparse._SubParsersAction) -> None:
    """Add ``bootstrap`` to the ``image`` verbs."""
    q = isub.add_parser(
        "bootstrap", help="make a Debian base image with debootstrap",
        description="Install Debian SUITE (debootstrap --variant=minbase) from the Debian archive "
        "this machine's apt uses, and store it as debian:SUITE. The image's layer is kept in the "
        "cache directory and taken from there next time (--refresh makes a new one).",
        epilog="example: sandbox image bootstrap debian:bookworm && "
        "sandbox run debian:bookworm -- cat /etc/debian_version")
    q.add_argument("ref", metavar="debian:SUITE")
    q.add_argument("--mirror", help="the archive to install from (default: the one apt uses here)")
    q.add_argument("--cache", default=os.environ.get("SANDBOX_BOOTSTRAP_CACHE", DEFAULT_CACHE),
                   help=f"where the layer is kept between runs (default {DEFAULT_CACHE}; "
                   "'none' keeps nothing)")
    q.add_argument("--refresh", action="store_true", help="bootstrap again even if cached")
    q.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from ..images.bootstrap import bootstrap
    from ..units import format_size

    cache = None if args.cache in ("", "none") else args.cache
    image = bootstrap(args.ref, mirror=args.mirror, cache=cache, refresh=args.refresh)
    size = sum(layer.size for layer in image.layers)
    print(f"bootstrapped {image.tags[0]} {image.id} ({format_size(size)})")
    return 0
