"""The image verbs: `images`, `image import|ls|rm|inspect|history|prune`, `tag`, `rmi`, `commit`."""

from __future__ import annotations

import argparse
import json
import time

from ..import_sources import SOURCES, file_kind, os_error_text
from ..units import format_size


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("image", help="manage images", description="Manage the image store.")
    isub = p.add_subparsers(dest="image_verb", metavar="VERB", parser_class=type(p))
    isub.required = True
    q = isub.add_parser("import", help="import a directory or rootfs tarball as an image",
                        description="Copy a directory, or unpack a rootfs tarball (plain, gzip, "
                        "xz, bzip2 or zstd; - reads it from standard input), into the image "
                        "store as a one-layer image NAME[:TAG]. Nothing is written outside the "
                        "new image: members with absolute or '..' paths, hard links to anything "
                        "but earlier members, writes through symbolic links and device nodes "
                        "(outside dev/) are refused.",
                        epilog="example: mkdir -p r/bin && cp /bin/busybox r/bin/ && "
                        "r/bin/busybox --install -s r/bin && sandbox image import r mine:1")
    q.add_argument("path", metavar="PATH", help="a directory, a tar archive, or - for stdin")
    q.add_argument("name", metavar="NAME[:TAG]")
    q.add_argument("--replace", action="store_true", help="move the tag if it exists")
    q.set_defaults(handler=import_, remote=remote_import)
    isub.add_parser("ls", help="list images (as `sandbox images`)").set_defaults(handler=ls, remote=remote_ls)
    q = isub.add_parser("rm", help="remove images (as `sandbox rmi`)")
    _rmi_arguments(q)
    q = isub.add_parser("inspect", help="an image's config, layers and history as JSON")
    q.add_argument("refs", nargs="+", metavar="IMAGE")
    q.set_defaults(handler=inspect, remote=remote_inspect)
    q = isub.add_parser("history", help="the steps that made an image, newest first")
    q.add_argument("ref", metavar="IMAGE")
    q.add_argument("--no-trunc", action="store_true", help="do not shorten the steps")
    q.set_defaults(handler=history)
    q = isub.add_parser("prune", help="remove the build cache and every unused layer",
                        description="Drop the build cache and delete every blob and unpacked "
                        "layer that no tag and no live sandbox needs; say how much that freed.")
    q.set_defaults(handler=prune)
    from .bootstrap import register as register_bootstrap

    register_bootstrap(isub)
    sub.add_parser("images", help="list images (NAME, TAG, ID, SIZE, CREATED)").set_defaults(
        handler=ls, remote=remote_ls)
    q = sub.add_parser("tag", help="give an image another NAME[:TAG]",
                       description="Point TARGET (NAME[:TAG]) at the image SOURCE names.")
    q.add_argument("source", metavar="SOURCE")
    q.add_argument("target", metavar="TARGET")
    q.set_defaults(handler=tag, remote=remote_tag)
    _rmi_arguments(sub.add_parser("rmi", help="remove images",
                                  description="Remove tags; an image whose last tag goes is "
                                  "deleted with the layers nothing else uses. Refused while a "
                                  "live sandbox runs the image, unless -f."))
    q = sub.add_parser("commit", help="make an image of a live sandbox's changes",
                       description="Store what the live sandbox NAME changed as a new layer "
                       "over its image, tagged IMAGE[:TAG]. The sandbox is paused meanwhile.")
    q.add_argument("sandbox", metavar="ID|NAME")
    q.add_argument("target", metavar="IMAGE[:TAG]")
    q.add_argument("-m", "--message", default="", help="a comment for the image's history")
    q.set_defaults(handler=commit, remote=remote_commit)


def _rmi_arguments(q: argparse.ArgumentParser) -> None:
    q.add_argument("refs", nargs="+", metavar="IMAGE")
    q.add_argument("-f", "--force", action="store_true", help="untag even while a sandbox uses it")
    q.set_defaults(handler=rmi, remote=remote_rmi)


def import_(args: argparse.Namespace) -> int:
    from ..images import import_image

    image = import_image(args.path, args.name, replace=args.replace)
    print(f"imported {image.tags[0]} {image.id}")
    return 0


def remote_import(args: argparse.Namespace, client) -> int:
    """`sandbox image import` through a daemon: the archive (a directory packed as one, or
    standard input) uploaded, unpacked there by the same rules; the same output."""
    made = client.images.import_archive(_archive(args.path), args.name, source=args.path,
                                        replace=args.replace)
    print(f"imported {made['tags'][0]} {made['id']}")
    return 0


#: What `image import` reads (as the engine's importer says it).


def _archive(path: str) -> bytes:
    """The bytes to upload: the file, standard input, or a directory as a tar of it."""
    import os
    import stat
    import sys

    from ..errors import ImageError

    if path == "-":
        return sys.stdin.buffer.read()
    try:
        mode = os.stat(path).st_mode
        if stat.S_ISDIR(mode):
            return _pack_directory(path)
        if not stat.S_ISREG(mode):
            raise ImageError(f"cannot import {path}: it is {file_kind(mode)}; accepted: {SOURCES}")
        with open(path, "rb") as f:
            return f.read()
    except OSError as exc:
        raise ImageError(f"cannot import {path}: {os_error_text(exc)}") from None


def _pack_directory(path: str) -> bytes:
    """A directory as a tar, every entry as it is (the daemon's unpacker judges them)."""
    import io
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        tar.add(path, arcname=".")
    return buf.getvalue()


def ls(args: argparse.Namespace) -> int:
    from ..inventory import image_rows

    return _print_images(image_rows())


def remote_ls(args: argparse.Namespace, client) -> int:
    return _print_images(client.images.list())


def _print_images(rows: list[dict]) -> int:
    from .tables import print_table

    def cells(r: dict) -> tuple[str, ...]:
        if r["id"] is None:
            return (r["name"], r["tag"] or "-", "-", "-", r["note"] or "-")
        created = time.strftime("%Y-%m-%d %H:%M", time.localtime(r["created"] or 0))
        return (r["name"], r["tag"], _short_id(r["id"]), format_size(r["size"]), created)

    print_table(("NAME", "TAG", "ID", "SIZE", "CREATED"), [cells(r) for r in rows])
    return 0


def _short_id(image_id: str) -> str:
    return image_id.removeprefix("sha256:")[:12]


def inspect(args: argparse.Namespace) -> int:
    from ..inventory import inspect_image

    print(json.dumps([inspect_image(ref) for ref in args.refs], indent=2))
    return 0


def remote_inspect(args: argparse.Namespace, client) -> int:
    print(json.dumps([client.images.inspect(ref) for ref in args.refs], indent=2))
    return 0


def history(args: argparse.Namespace) -> int:
    from ..images import lookup
    from ..images.digest import short_id
    from ..images.layers import unpacked_size

    image = lookup(args.ref)
    layers = list(image.layers)
    rows = []
    for entry in image.config.history:
        size = "0B"
        if not entry.get("empty_layer") and layers:
            size = format_size(unpacked_size(layers.pop(0).diff_id))
        by = str(entry.get("created_by", ""))
        rows.append((str(entry.get("created", ""))[:19].replace("T", " "),
                     by if args.no_trunc or len(by) <= 45 else by[:44] + "…",
                     size, str(entry.get("comment", ""))))
    print(f"IMAGE {short_id(image.id)}  {' '.join(image.tags)}")
    header = ("CREATED", "CREATED BY", "SIZE", "COMMENT")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(4)]
    for row in [header, *reversed(rows)]:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
    return 0


def tag(args: argparse.Namespace) -> int:
    from ..images import tag_image

    image = tag_image(args.source, args.target)
    print(f"tagged {image.id[:19]} as {args.target}")
    return 0


def remote_tag(args: argparse.Namespace, client) -> int:
    made = client.images.tag(args.source, args.target)
    print(f"tagged {made['id'][:19]} as {args.target}")
    return 0


def rmi(args: argparse.Namespace) -> int:
    from ..inventory import remove_image

    return _rmi(args, lambda ref: remove_image(ref, force=args.force))


def remote_rmi(args: argparse.Namespace, client) -> int:
    return _rmi(args, lambda ref: client.images.remove(ref, force=args.force))


def _rmi(args: argparse.Namespace, remove) -> int:
    for ref in args.refs:
        removed = remove(ref)
        print(f"untagged {ref} ({removed['id'][:19]}); freed {format_size(removed['freed'])}")
    return 0


def prune(args: argparse.Namespace) -> int:
    from ..images import prune as prune_store

    report = prune_store()
    print(f"removed {report.cache_entries} build cache entries, {report.layers} layers, "
          f"{report.blobs} blobs, {report.work_dirs} work dirs; freed {format_size(report.freed)}")
    return 0


def commit(args: argparse.Namespace) -> int:
    from ..images.commit import commit_sandbox

    image = commit_sandbox(args.sandbox, args.target, message=args.message)
    print(f"committed {args.sandbox} as {image.tags[0]} {image.id}")
    return 0


def remote_commit(args: argparse.Namespace, client) -> int:
    made = client.images.commit(args.sandbox, args.target, message=args.message)
    print(f"committed {args.sandbox} as {made['tags'][0]} {made['id']}")
    return 0
