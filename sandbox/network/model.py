"""What a network is: a bridge, a subnet and a gateway, as a frozen dataclass.

Pure data and arithmetic (no kernel, no files), so it is unit-tested without
root. A member's MAC address is derived from its IPv4 address, as Docker
does: when an address is reused, a neighbour entry the host still caches for
it stays right.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from dataclasses import dataclass

from ..errors import NetworkError

#: The name of the default network, and names that are modes, not networks.
DEFAULT = "bridge"
RESERVED = ("none", "host", DEFAULT)
#: Every sandbox link starts with one of these (the test leak check knows them).
BRIDGE_PREFIX = "sbx"
VETH_PREFIX = "vsb"
PEER_NAME = "eth0"
IFNAMSIZ = 15

_IFNAME_RE = re.compile(r"^[A-Za-z0-9_.-]{1,15}$")


@dataclass(frozen=True)
class Network:
    """A network: its name, its bridge on the host, and its IPv4 subnet.

    ``isolated``: members reach the gateway (and what the firewall lets
    through it) but never each other: their bridge ports are isolated (no
    frame passes from one member's port to another's) and the firewall drops
    what the host would route from the bridge back into it.
    """

    name: str
    bridge: str
    subnet: str  # CIDR, e.g. 10.200.0.0/16; the gateway is its first address
    isolated: bool = False

    def __post_init__(self) -> None:
        if not _IFNAME_RE.match(self.bridge):
            raise NetworkError(f"invalid bridge name {self.bridge!r}: expected 1-15 letters, "
                               "digits, '_', '.' or '-'")
        object.__setattr__(self, "subnet", str(parse_subnet(self.subnet)))

    @property
    def net(self) -> ipaddress.IPv4Network:
        return ipaddress.IPv4Network(self.subnet)

    @property
    def gateway(self) -> str:
        """The bridge's own address: the subnet's first host address."""
        return str(self.net.network_address + 1)

    @property
    def prefixlen(self) -> int:
        return self.net.prefixlen

    @property
    def size(self) -> int:
        """How many member addresses the subnet holds (no network, gateway, broadcast)."""
        return self.net.num_addresses - 3

    def address(self, index: int) -> str:
        """The member address number ``index`` (0-based, after the gateway)."""
        return str(self.net.network_address + 2 + index % self.size)

    def index(self, address: str) -> int:
        return int(ipaddress.IPv4Address(address)) - int(self.net.network_address) - 2

    @property
    def firewall_table(self) -> str:
        """The nftables table (family ip) that holds this network's rules."""
        return f"sandbox_{self.bridge}"


def parse_subnet(text: object) -> ipaddress.IPv4Network:
    """An IPv4 CIDR with room for a gateway and at least one member (/8 to /29)."""
    try:
        net = ipaddress.IPv4Network(str(text), strict=True)
    except ValueError as exc:
        raise NetworkError(f"invalid subnet {text!r}: {exc} (expected a CIDR like 10.210.0.0/24)") from None
    if not 8 <= net.prefixlen <= 29:
        raise NetworkError(f"invalid subnet {text!r}: expected a prefix length from /8 to /29")
    return net


def bridge_name(network_name: str, salt: str) -> str:
    """A bridge name for a named network: ``sbx`` + 8 hex digits of (salt, name).

    The salt (the state directory) keeps two installations, e.g. two test
    sessions, from picking the same bridge for the same network name.
    """
    digest = hashlib.sha1(f"{salt}\0{network_name}".encode()).hexdigest()
    return f"{BRIDGE_PREFIX}{digest[:8]}"


def veth_name(sandbox_id: str) -> str:
    """The host end of a sandbox's veth pair: ``vsb`` + the id (15 chars at most)."""
    return f"{VETH_PREFIX}{sandbox_id}"[:IFNAMSIZ]


def mac_for(address: str) -> str:
    """A locally administered MAC derived from the address: 02:5b:a:b:c:d."""
    octets = ipaddress.IPv4Address(address).packed
    return "02:5b:" + ":".join(f"{b:02x}" for b in octets)


def bridge_mac(subnet: str) -> str:
    """The bridge's fixed MAC (02:5a + network address).

    A bridge without an address of its own takes the lowest MAC of its
    ports, so it would change as sandboxes come and go and break the
    members' neighbour caches for the gateway.
    """
    octets = ipaddress.IPv4Network(subnet).network_address.packed
    return "02:5a:" + ":".join(f"{b:02x}" for b in octets)
