"""`sandbox network create|ls|rm`: named networks for sandboxes that talk to each other."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("network", help="manage networks",
                       description="Manage named networks. Members of a network reach each "
                       "other by address and by --name (unless it is --isolated); separate "
                       "networks cannot reach each other.")
    nsub = p.add_subparsers(dest="network_verb", metavar="VERB", parser_class=type(p))
    nsub.required = True
    q = nsub.add_parser("create", help="create a named network (and its bridge)",
                        description="Create network NAME with its own bridge and subnet.",
                        epilog="example: sandbox network create ci --subnet 10.220.5.0/24")
    q.add_argument("name", metavar="NAME")
    q.add_argument("--subnet", metavar="CIDR",
                   help="IPv4 subnet, /8 to /29 (default: a free /24 from 10.220.0.0/14)")
    q.add_argument("--isolated", action="store_true",
                   help="members reach the gateway (and, as allowed, egress, published and "
                   "host ports) but never each other, at layer 2 or routed through the host")
    q.set_defaults(handler=create, remote=remote_create)
    q = nsub.add_parser("ls", help="list networks")
    q.set_defaults(handler=ls, remote=remote_ls)
    q = nsub.add_parser("rm", help="remove networks (refused while they have members)",
                        description="Remove networks, their bridges and firewall tables; "
                        "refused while a sandbox uses one. The default network `bridge` "
                        "can be removed too: it is made again on its next use.")
    q.add_argument("names", nargs="+", metavar="NAME")
    q.set_defaults(handler=rm, remote=remote_rm)


def create(args: argparse.Namespace) -> int:
    from ..inventory import create_network

    return _created(create_network(args.name, args.subnet, isolated=args.isolated))


def remote_create(args: argparse.Namespace, client) -> int:
    return _created(client.networks.create(args.name, args.subnet, isolated=args.isolated))


def _created(network: dict) -> int:
    isolated = ", isolated" if network.get("isolated") else ""
    print(f"created {network['name']} ({network['subnet']} on {network['bridge']}{isolated})")
    return 0


def ls(args: argparse.Namespace) -> int:
    from ..inventory import network_rows

    return _print_networks(network_rows())


def remote_ls(args: argparse.Namespace, client) -> int:
    return _print_networks(client.networks.list())


def _print_networks(rows: list[dict]) -> int:
    from .tables import print_table

    print_table(("NAME", "BRIDGE", "SUBNET", "ISOLATED", "MEMBERS"),
                [(r["name"], r["bridge"], r["subnet"], "yes" if r.get("isolated") else "no",
                  str(r["members"])) for r in rows])
    return 0


def rm(args: argparse.Namespace) -> int:
    from ..inventory import remove_network

    return _removed(args, remove_network)


def remote_rm(args: argparse.Namespace, client) -> int:
    return _removed(args, client.networks.remove)


def _removed(args: argparse.Namespace, remove) -> int:
    for name in args.names:
        network = remove(name)
        if network["default"]:
            print(f"removed {name} (bridge {network['bridge']}, its firewall and addresses); it "
                  "is made again, its subnet chosen afresh, the next time a sandbox uses "
                  "--network bridge")
        else:
            print(f"removed {name}")
    return 0
