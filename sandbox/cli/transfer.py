"""The verbs that move images: `save`, `load`, `pull`, `push`, `login`, `logout`."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterable
from typing import Any, TextIO

INSECURE_HELP = ("speak plain HTTP to this registry (host[:port]); localhost and 127.0.0.1 always are; "
                 "also SANDBOX_INSECURE_REGISTRIES=host,host")


def register(sub: argparse._SubParsersAction) -> None:
    q = sub.add_parser("save", help="write images to a docker-archive or OCI layout tar",
                       description="Write IMAGE... to one archive: a docker-archive (what `docker save` "
                       "writes; `docker load` and `podman load` read it) or, with --format oci, an OCI "
                       "image layout tar (skopeo's oci-archive).",
                       epilog="example: sandbox save -o app.tar app:1 && podman load -i app.tar")
    q.add_argument("images", nargs="+", metavar="IMAGE")
    q.add_argument("-o", "--output", metavar="FILE", help="the archive to write (default: standard output, "
                   "unless it is a terminal)")
    q.add_argument("--format", choices=("docker-archive", "oci"), default="docker-archive",
                   help="docker-archive (default) or oci")
    q.set_defaults(handler=save)
    q = sub.add_parser("load", help="load images from a docker-archive or OCI layout tar",
                       description="Store the images of an archive that `docker save`, `podman save`, "
                       "`skopeo copy ... docker-archive:|oci-archive:` or `sandbox save` wrote (plain, "
                       "gzip or zstd). Every blob is checked against its digest, every layer against its "
                       "diffID; a layer that would write outside its directory is refused. For a plain "
                       "rootfs tarball, use `sandbox image import`.")
    q.add_argument("-i", "--input", default="-", metavar="FILE", help="the archive (default -: standard input)")
    q.add_argument("-t", "--tag", metavar="NAME[:TAG]", help="the name of the loaded image, when the archive "
                   "holds one image (required if it names none)")
    q.set_defaults(handler=load)
    q = sub.add_parser("pull", help="copy an image from a registry into the store",
                       description="Copy [REGISTRY[:PORT]/]REPO[:TAG|@DIGEST] from its registry (Docker Hub "
                       "when no registry is named), for this host's platform; what the store has is not "
                       "fetched again. Credentials: `sandbox login`, or ~/.docker/config.json.",
                       epilog="example: sandbox pull 127.0.0.1:5000/team/tool:1")
    q.add_argument("ref", metavar="REF")
    q.add_argument("--insecure-registry", action="append", default=[], metavar="HOST", help=INSECURE_HELP)
    q.add_argument("-q", "--quiet", action="store_true", help="print only the digest")
    q.set_defaults(handler=pull, remote=remote_pull)
    q = sub.add_parser("push", help="copy a stored image to a registry",
                       description="Copy the stored image REF (tag it first: `sandbox tag app:1 "
                       "HOST:PORT/app:1`) to the registry and repository its name holds; blobs the "
                       "registry has are skipped, or mounted from another of its repositories.",
                       epilog="example: sandbox tag app:1 127.0.0.1:5000/app:1 && sandbox push 127.0.0.1:5000/app:1")
    q.add_argument("ref", metavar="REF")
    q.add_argument("--insecure-registry", action="append", default=[], metavar="HOST", help=INSECURE_HELP)
    q.add_argument("-q", "--quiet", action="store_true", help="print only the digest")
    q.set_defaults(handler=push, remote=remote_push)
    q = sub.add_parser("login", help="keep credentials for a registry",
                       description="Check USER and the password read from standard input against "
                       "REGISTRY, then keep them for pulls and pushes in $SANDBOX_STATE_DIR/auth.json "
                       "(readable by root only). The password is never taken from the command line.",
                       epilog="example: printf '%%s' \"$TOKEN\" | sandbox login -u ci registry.example:5000")
    q.add_argument("registry", metavar="REGISTRY", help="HOST[:PORT]")
    q.add_argument("-u", "--username", required=True)
    q.add_argument("--password-stdin", action="store_true", help="read the password from standard input "
                   "(the default; kept for Docker's spelling)")
    q.add_argument("--insecure-registry", action="append", default=[], metavar="HOST", help=INSECURE_HELP)
    q.set_defaults(handler=login)
    q = sub.add_parser("logout", help="forget the credentials of a registry")
    q.add_argument("registry", metavar="REGISTRY", help="HOST[:PORT]")
    q.set_defaults(handler=logout)


def save(args: argparse.Namespace) -> int:
    from ..errors import ImageError
    from ..images.archive import save_images

    if args.output in (None, "-"):
        if sys.stdout.isatty():
            raise ImageError("refusing to write an archive to a terminal", hint="use -o FILE, or redirect")
        save_images(args.images, sys.stdout.buffer, fmt=args.format)
        return 0
    tmp = f"{args.output}.{os.getpid()}.partial"
    try:
        with open(tmp, "wb") as out:
            save_images(args.images, out, fmt=args.format)
        os.rename(tmp, args.output)
    except OSError as exc:
        raise ImageError(f"cannot write {args.output}: {exc.strerror or exc}") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return 0


def load(args: argparse.Namespace) -> int:
    from ..images.archive import load_archive
    from ..images.importer import open_source

    if args.input == "-":
        loaded = load_archive(sys.stdin.buffer, "standard input", tag=args.tag)
    else:
        kind, handle = open_source(args.input)
        if kind != "archive":
            os.close(handle)
            from ..errors import ImageError

            raise ImageError(f"cannot load {args.input}: it is a directory; accepted: an archive file or -")
        with handle:
            loaded = load_archive(handle, args.input, tag=args.tag)
    for image in loaded:
        print(f"Loaded image: {image.tags[0] if image.tags else image.id} ({image.id})")
    return 0


def _progress(args: argparse.Namespace):
    from ..images.registry import for_stream, silent

    return silent if args.quiet else for_stream(sys.stderr)


def pull(args: argparse.Namespace) -> int:
    from ..images.registry import pull as pull_image

    image = pull_image(args.ref, progress=_progress(args), insecure=args.insecure_registry)
    if args.quiet:
        print(image.id)
    return 0


def push(args: argparse.Namespace) -> int:
    from ..images.registry import push as push_image

    digest = push_image(args.ref, progress=_progress(args), insecure=args.insecure_registry)
    if args.quiet:
        print(digest)
    return 0


def remote_pull(args: argparse.Namespace, client) -> int:
    """`sandbox pull` through a daemon: its progress on stderr, -q the image id, as here."""
    outcome = follow_progress(client.images.pull(args.ref, insecure=args.insecure_registry),
                              None if args.quiet else sys.stderr)
    return _finish(outcome, "id" if args.quiet else None)


def remote_push(args: argparse.Namespace, client) -> int:
    """`sandbox push` through a daemon: its progress on stderr, -q the digest, as here."""
    outcome = follow_progress(client.images.push(args.ref, insecure=args.insecure_registry),
                              None if args.quiet else sys.stderr)
    return _finish(outcome, "digest" if args.quiet else None)


def follow_progress(lines: Iterable[dict[str, Any]], out: TextIO | None) -> dict[str, Any]:
    """Print a daemon's progress lines to ``out`` (None: not at all); the last line,
    ``{"result": ...}`` or ``{"error": ...}``."""
    from ..client import DaemonError

    for item in lines:
        if "progress" in item:
            if out is not None:
                print(item["progress"], file=out, flush=True)
        elif "result" in item or "error" in item:
            return item
    raise DaemonError("the daemon's answer ended before its result (was the daemon stopped?)")


def _finish(outcome: dict[str, Any], printed: str | None) -> int:
    from . import fail

    if "error" in outcome:
        return fail(outcome["error"]["message"], int(outcome["error"].get("exit_status") or 125))
    if printed:
        print(outcome["result"][printed])
    return 0


def login(args: argparse.Namespace) -> int:
    from ..errors import ImageError
    from ..images.registry import login as login_registry

    if sys.stdin.isatty():
        import getpass

        password = getpass.getpass(f"password for {args.username} at {args.registry}: ")
    else:
        password = sys.stdin.read(64 << 10).rstrip("\r\n")
    if not password:
        raise ImageError("no password on standard input",
                         hint="pipe it in: printf '%s' \"$PASSWORD\" | sandbox login -u USER REGISTRY")
    where = login_registry(args.registry, args.username, password, insecure=args.insecure_registry)
    print(f"Login Succeeded (credentials kept in {where})")
    return 0


def logout(args: argparse.Namespace) -> int:
    from ..errors import ImageError
    from ..images.registry import logout as logout_registry

    if not logout_registry(args.registry):
        raise ImageError(f"not logged in to {args.registry}")
    print(f"Removed the credentials of {args.registry}")
    return 0
