"""`sandbox image import|ls|rm` and `sandbox images`."""

from __future__ import annotations

import argparse
import time

from ..units import format_size


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("image", help="manage images", description="Manage images.")
    isub = p.add_subparsers(dest="image_verb", metavar="VERB", parser_class=type(p))
    isub.required = True
    q = isub.add_parser("import", help="import a directory or rootfs tarball as an image",
                        description="Copy a directory, or unpack a rootfs tarball (plain, gzip, "
                        "xz, bzip2 or zstd; - reads it from standard input), into the image "
                        "store as NAME. Nothing is written outside the new image: members with "
                        "absolute or '..' paths, hard links to anything but earlier members, "
                        "writes through symbolic links and device nodes (outside dev/) are "
                        "refused.",
                        epilog="example: mkdir -p r/bin && cp /bin/busybox r/bin/ && "
                        "r/bin/busybox --install -s r/bin && sandbox image import r mine")
    q.add_argument("path", metavar="PATH", help="a directory, a tar archive, or - for stdin")
    q.add_argument("name", metavar="NAME")
    q.add_argument("--replace", action="store_true", help="replace an image of that name")
    q.set_defaults(handler=import_)
    q = isub.add_parser("ls", help="list images")
    q.set_defaults(handler=ls)
    q = isub.add_parser("rm", help="remove an image")
    q.add_argument("names", nargs="+", metavar="NAME")
    q.set_defaults(handler=rm)
    p = sub.add_parser("images", help="list images (same as `image ls`)")
    p.set_defaults(handler=ls)


def import_(args: argparse.Namespace) -> int:
    from ..images import import_image

    image = import_image(args.path, args.name, replace=args.replace)
    print(f"imported {image.name} ({format_size(image.size or 0)})")
    return 0


def ls(args: argparse.Namespace) -> int:
    from ..images import list_images

    found = {i.name: i for i in list_images()}
    print(f"{'NAME':<20} {'SIZE':>10}  CREATED")
    for name in sorted(set(found) | {"busybox", "host"}):
        image = found.get(name)
        if name == "host":
            print(f"{name:<20} {'-':>10}  (read-only view of this host)")
        elif image is None:
            print(f"{name:<20} {'-':>10}  (made on first use)")
        else:
            created = time.strftime("%Y-%m-%d %H:%M", time.localtime(image.created or 0))
            print(f"{name:<20} {format_size(image.size or 0):>10}  {created}")
    return 0


def rm(args: argparse.Namespace) -> int:
    from ..images import remove_image

    for name in args.names:
        remove_image(name)
        print(f"removed {name}")
    return 0
