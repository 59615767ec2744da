"""A network's nftables table: isolation, opt-in egress (NAT) and -p.

One table per network, ``ip sandbox_<bridge>``, made with the bridge:

- forward: members may talk to each other (on an isolated network, what
  the host would route from the bridge back into it is dropped: a member
  that sends another's traffic to the gateway gets it nowhere; the bridge
  ports themselves are isolated, see ``requests.isolate_port_request``);
  traffic from the bridge to anywhere else is dropped unless the member's
  address is in the ``egress`` set; new connections into the bridge from
  elsewhere are dropped. So two networks cannot reach each other even when
  the host forwards packets.
- input: members reach no service of the host. What comes from the bridge
  for the host itself (its address on the bridge, any other address of it,
  127.0.0.0/8: route_localnet is on for -p) is dropped, but for replies
  (to -p connections, un-NATed to 127.0.0.1, and ICMP errors) and for the
  ports a member was given with ``--allow-host-port`` (the ``host_ports``
  set: member address . port, TCP or UDP). The sandbox service offers
  members nothing on the host by itself.
- nat: members in ``egress`` are masqueraded; ``publish`` maps a TCP port of
  the host's 127.0.0.1 to a member's address and port.

Per sandbox, only set and map elements change (``nft add element``), and only
when it asks for --egress, -p or --allow-host-port. nft(8) is run as a
command: pyroute2's nftables support cannot yet express these rules.

A bridge made by an older version has an older table: ``ensure_current``
brings its input chain and sets up to date (once per boot and state run
directory: a marker file says it was done), keeping the elements of the
members it has.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from .. import state
from ..errors import HostError, NetworkError
from .model import Network

RULES = """\
table ip {table} {{
  set egress {{ type ipv4_addr; }}
  set host_ports {{ type ipv4_addr . inet_service; }}
  map publish {{ type inet_service : ipv4_addr . inet_service; }}
  chain forward {{
    type filter hook forward priority -1; policy accept;
    iifname "{br}" oifname "{br}" {between_members}
    iifname "{br}" ip saddr @egress accept
    iifname "{br}" drop
    oifname "{br}" ct state established,related accept
    oifname "{br}" drop
  }}
  chain input {{
    type filter hook input priority -1; policy accept;
{input}
  }}
  chain output {{
    type nat hook output priority -100; policy accept;
    ip daddr 127.0.0.1 dnat ip to tcp dport map @publish
  }}
  chain postrouting {{
    type nat hook postrouting priority 100; policy accept;
    ip saddr @egress oifname != "{br}" masquerade
    oifname "{br}" ip saddr 127.0.0.0/8 masquerade
  }}
}}
"""


#: The input chain's rules (the version that adds anything here adds to VERSION too).
INPUT = """\
    iifname "{br}" ip daddr 127.0.0.0/8 ct direction original drop
    iifname "{br}" ct state established,related accept
    iifname "{br}" meta l4proto {{ tcp, udp }} ip saddr . th dport @host_ports accept
    iifname "{br}" drop"""
VERSION = "2"


def nft(script: str, *, what: str) -> str:
    """Run an nft script; NetworkError with nft's own first line on failure."""
    binary = shutil.which("nft")
    if binary is None:
        raise HostError("nft not found: bridge networks need nftables for isolation",
                        hint="apt-get install nftables")
    proc = subprocess.run([binary, "-f", "-"], input=script, capture_output=True, text=True)
    if proc.returncode != 0:
        detail = (proc.stderr.strip().splitlines() or ["failed"])[0]
        raise NetworkError(f"{what} failed: {detail}")
    return proc.stdout


def rules(network: Network) -> str:
    """The network's whole table, as an nft script (an isolated network's members get
    nothing routed to each other: dropped and counted)."""
    return RULES.format(table=network.firewall_table, br=network.bridge,
                        between_members="counter drop" if network.isolated else "accept",
                        input=INPUT.format(br=network.bridge))


def install(network: Network) -> None:
    nft(rules(network), what=f"installing the firewall of network {network.name!r}")
    _mark_current(network)


def ensure_current(network: Network) -> None:
    """Bring the table of a bridge made by an older version up to date (its sets' elements kept)."""
    if _marker(network).exists():
        return
    table, br = network.firewall_table, network.bridge
    script = (f"add set ip {table} host_ports {{ type ipv4_addr . inet_service; }}\n"
              f"flush chain ip {table} input\n"
              + "".join(f"add rule ip {table} input {line.strip()}\n"
                        for line in INPUT.format(br=br).splitlines()))
    nft(script, what=f"updating the firewall of network {network.name!r}")
    _mark_current(network)


def _marker(network: Network) -> Path:
    return state.run_dir() / "networks" / f"{network.bridge}.firewall-{VERSION}"


def _mark_current(network: Network) -> None:
    try:
        _marker(network).parent.mkdir(parents=True, exist_ok=True)
        _marker(network).touch()
    except OSError:
        pass  # checked again next time


def uninstall(network: Network) -> None:
    if table_exists(network.firewall_table):
        nft(f"delete table ip {network.firewall_table}\n",
            what=f"removing the firewall of network {network.name!r}")


def table_exists(table: str) -> bool:
    binary = shutil.which("nft")
    if binary is None:
        return False
    return subprocess.run([binary, "list", "table", "ip", table], capture_output=True).returncode == 0


def list_rules(network: Network) -> str:
    """The table as nft prints it (for tests and `sandbox network ls -v`)."""
    return nft(f"list table ip {network.firewall_table}\n", what="listing the firewall")


def open_ports(network: Network, address: str, egress: bool,
               publish: tuple[tuple[int, int], ...], host_ports: tuple[int, ...] = ()) -> None:
    """Add a member's egress, published ports and host ports (one nft call)."""
    script = _elements("add", network, address, egress, publish, host_ports)
    if script:
        if egress:
            enable_forwarding()
        try:
            nft(script, what=f"opening egress/ports for {address}")
        except NetworkError as exc:
            if "File exists" in str(exc) and publish:  # a port another sandbox took meanwhile
                ports = ", ".join(str(h) for h, _ in publish)
                raise NetworkError(f"host port {ports} is already published by another sandbox",
                                   hint="choose another -p HOSTPORT") from exc
            raise


def close_ports(network: Network, address: str, egress: bool,
                publish: tuple[tuple[int, int], ...], host_ports: tuple[int, ...] = ()) -> None:
    """Remove them again; elements already gone are not an error."""
    for line in _elements("delete", network, address, egress, publish, host_ports).splitlines():
        try:
            nft(line + "\n", what=f"closing egress/ports for {address}")
        except NetworkError:
            continue


def _elements(verb: str, network: Network, address: str, egress: bool,
              publish: tuple[tuple[int, int], ...], host_ports: tuple[int, ...] = ()) -> str:
    table = network.firewall_table
    lines = [f"{verb} element ip {table} egress {{ {address} }}"] if egress else []
    lines += [f"{verb} element ip {table} host_ports {{ {address} . {port} }}" for port in host_ports]
    for host_port, port in publish:
        value = f" : {address} . {port}" if verb == "add" else ""
        lines.append(f"{verb} element ip {table} publish {{ {host_port}{value} }}")
    return "".join(line + "\n" for line in lines)


def enable_forwarding() -> None:
    """net.ipv4.ip_forward=1, needed for egress (host-wide, left on, as Docker does)."""
    with open("/proc/sys/net/ipv4/ip_forward", "r+") as f:
        if f.read().strip() != "1":
            f.seek(0)
            f.write("1")
