"""`sandbox network create|ls|rm`: named networks for sandboxes that talk to each other."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("network", help="manage networks",
                       description="Manage named networks. Members of a network reach each "
                       "other by address and by --name; separate networks cannot reach each other.")
    nsub = p.add_subparsers(dest="network_verb", metavar="VERB", parser_class=type(p))
    nsub.required = True
    q = nsub.add_parser("create", help="create a named network (and its bridge)",
                        description="Create network NAME with its own bridge and subnet.",
                        epilog="example: sandbox network create ci --subnet 10.220.5.0/24")
    q.add_argument("name", metavar="NAME")
    q.add_argument("--subnet", metavar="CIDR",
                   help="IPv4 subnet, /8 to /29 (default: a free /24 from 10.220.0.0/14)")
    q.set_defaults(handler=create)
    q = nsub.add_parser("ls", help="list networks")
    q.set_defaults(handler=ls)
    q = nsub.add_parser("rm", help="remove networks (refused while they have members)",
                        description="Remove networks, their bridges and firewall tables; "
                        "refused while a sandbox uses one. The default network `bridge` "
                        "can be removed too: it is made again on its next use.")
    q.add_argument("names", nargs="+", metavar="NAME")
    q.set_defaults(handler=rm)


def create(args: argparse.Namespace) -> int:
    from . import registry

    network = registry.create(args.name, args.subnet)
    print(f"created {network.name} ({network.subnet} on {network.bridge})")
    return 0


def ls(args: argparse.Namespace) -> int:
    from . import ipam, registry

    rows = [(n.name, n.bridge, n.subnet, str(len(ipam.members(n))))
            for n in registry.list_networks()]
    header = ("NAME", "BRIDGE", "SUBNET", "MEMBERS")
    widths = [max(len(x) for x in col) for col in zip(header, *rows)]
    for row in (header, *rows):
        print("  ".join(x.ljust(w) for x, w in zip(row, widths)).rstrip())
    return 0


def rm(args: argparse.Namespace) -> int:
    from . import registry
    from .model import DEFAULT

    for name in args.names:
        network = registry.remove(name)
        if name == DEFAULT:
            print(f"removed {name} (bridge {network.bridge}, its firewall and addresses); it is "
                  "made again, its subnet chosen afresh, the next time a sandbox uses "
                  "--network bridge")
        else:
            print(f"removed {name}")
    return 0
