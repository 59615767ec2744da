"""Isolated networks on the real kernel: each member reaches the host's side, no member another.

A network made with ``isolated`` (`sandbox network create --isolated`, a
class's network) isolates its members' bridge ports, so no frame passes from
one member to another, and its firewall drops what the host would route from
the bridge back into it, so a member that can change its own routes (root in
its user namespace, given CAP_NET_ADMIN) gets nowhere through the gateway
either. The same tests on a network that is not isolated show its members
still reach each other. Traffic stays on addresses of namespaces these tests
make.
"""

import os
import re
import socket
from concurrent.futures import ThreadPoolExecutor

import pytest

from sandbox import NetworkSpec, Sandbox, SandboxSpec, capabilities_from, run
from sandbox.network import bridge, firewall, registry

from .helpers import sandbox_cli, wait_for

pytestmark = pytest.mark.root

#: A member's server: answers every connection on port 5000 with its name (busybox's
#: persistent server: it listens again at once, so no client finds the port closed).
SERVER = "nc -ll -p 5000 -e echo from-a"


@pytest.fixture
def network(request):
    """One named network for the test (isolated or not, as the test's parameter says);
    afterwards its bridge and firewall table are gone."""
    made = registry.create(f"tiso-{os.getpid() % 10000}", isolated=request.param)
    yield made
    registry.remove(made.name)
    assert not bridge.exists(made) and not firewall.table_exists(made.firewall_table)


def member(command, network, **kw):
    net_kw = {k: kw.pop(k) for k in ("alias", "publish", "allow_host_ports") if k in kw}
    return SandboxSpec(image="busybox", command=["sh", "-c", command],
                       network=NetworkSpec(network.name, **net_kw), **kw)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _read_from(address, port):
    """Connect from the host (retrying until the server listens); the first line it sends."""
    def attempt():
        try:
            with socket.create_connection((address, port), timeout=5) as conn:
                return conn.makefile("rb").readline() or None
        except OSError:
            return None
    return wait_for(attempt)


def _first_line(server: socket.socket) -> bytes:
    """The first line the first client of ``server`` sends (then it is answered by a close)."""
    server.settimeout(30)
    conn, _ = server.accept()
    with conn:
        conn.settimeout(5)
        return conn.makefile("rb").readline()


def _hairpins_dropped(network) -> int:
    """Packets the network's firewall dropped on their way from the bridge back into it."""
    found = re.search(r"oifname \S+ counter packets (\d+) bytes \d+ drop", firewall.list_rules(network))
    return int(found.group(1)) if found else 0


@pytest.mark.parametrize("network", [False, True], ids=["shared", "isolated"], indirect=True)
def test_members_reach_each_other_only_when_not_isolated_and_the_host_s_side_always(network):
    firewall.enable_forwarding()  # as any --egress sandbox does: the host routes packets
    isolated = network.isolated
    host_port = _free_port()
    with socket.socket() as service:  # a service of the host on the gateway, opened to members
        service.bind((network.gateway, 0))
        service.listen()
        service_port = service.getsockname()[1]
        heard = ThreadPoolExecutor(1).submit(_first_line, service)
        with Sandbox(member(SERVER, network, alias="a", publish=(f"{host_port}:5000",))) as a:
            assert _read_from(a.network.address, 5000) == b"from-a\n"  # a listens
            veth = f"/sys/class/net/{a.network.veth}/brport/isolated"
            assert open(veth).read().strip() == ("1" if isolated else "0")
            b = run(member(f"nc -w 2 a 5000 </dev/null; echo byname=$?; "
                           f"nc -w 2 {a.network.address} 5000 </dev/null; echo byaddr=$?; "
                           f"echo from-b | nc -w 2 {network.gateway} {service_port}; echo host=$?",
                           network, alias="b", allow_host_ports=(service_port,)))
            # the host's side: its published port reaches a, and b reached the host's service
            assert _read_from("127.0.0.1", host_port) == b"from-a\n"
            a.kill()
            a.wait()
        assert heard.result(timeout=30) == b"from-b\n"
    lines = b.stdout.decode().splitlines()
    assert lines[-1] == "host=0", b.stdout
    if isolated:
        assert lines == ["byname=1", "byaddr=1", "host=0"], (b.stdout, b.stderr)
    else:
        assert lines == ["from-a", "byname=0", "from-a", "byaddr=0", "host=0"], (b.stdout, b.stderr)


@pytest.mark.parametrize("network", [True], ids=["isolated"], indirect=True)
@pytest.mark.parametrize("userns, caps", [("auto", None), ("auto", ("NET_ADMIN",)),
                                          ("host", ("NET_ADMIN",))],
                         ids=["userns-default-caps", "userns-net-admin", "host-ids-net-admin"])
def test_members_that_route_through_the_gateway_reach_no_other(network, userns, caps):
    """Without CAP_NET_ADMIN a member may not change its routes: with userns=auto (a
    class's sandboxes) a student is root in its own user namespace, which owns its network
    namespace, and holds only the capabilities it was given there. Two sandboxes that may
    (CAP_NET_ADMIN, in a user namespace of their own or not) and both send the subnet
    through the gateway still do not reach each other: the host drops, and counts, what
    would go from the bridge back into it."""
    firewall.enable_forwarding()  # else the host would route nothing anyway: prove the drop
    capabilities = capabilities_from(add=caps) if caps else None
    via = " && ".join(f"ip route add {half} via {network.gateway} dev eth0"
                      for half in network.net.subnets(prefixlen_diff=1))
    with Sandbox(member(f"{via}; echo route=$?; {SERVER}", network, alias="a", userns=userns,
                        capabilities=capabilities)) as a:
        address = a.network.address
        assert _read_from(address, 5000) == b"from-a\n"
        before = _hairpins_dropped(network)
        b = run(member(f"{via}; echo route=$?; ip route get {address}; "
                       f"nc -w 2 {address} 5000 </dev/null; echo nc=$?",
                       network, alias="b", userns=userns, capabilities=capabilities))
        a.kill()
        routed_a = a.wait().stdout.splitlines()[0]
    out = b.stdout.decode()
    assert out.splitlines()[-1] == "nc=1" and "from-a" not in out, (out, b.stderr)
    if caps is None:
        assert routed_a == b"route=2" and out.startswith("route=2"), (out, b.stderr)
        assert b"Operation not permitted" in b.stderr
    else:
        assert routed_a == b"route=0" and out.startswith("route=0"), (out, b.stderr)
        assert f"via {network.gateway}" in out
        assert _hairpins_dropped(network) > before  # it went to the host, and no further


def test_the_cli_makes_and_lists_an_isolated_network_and_a_dry_run_says_so():
    created = sandbox_cli("network", "create", "tiso-cli", "--isolated")
    assert created.returncode == 0, created.stderr
    try:
        assert created.stdout.rstrip().endswith(b", isolated)")
        rows = [line.split() for line in sandbox_cli("network", "ls").stdout.decode().splitlines()]
        assert rows[0][:5] == ["NAME", "BRIDGE", "SUBNET", "ISOLATED", "MEMBERS"]
        assert next(row for row in rows if row[0] == "tiso-cli")[3:] == ["yes", "0"]
        plan = sandbox_cli("run", "--dry-run", "--network", "tiso-cli", "busybox", "--", "true")
        assert plan.returncode == 0, plan.stderr
        assert b"its bridge port isolated" in plan.stdout
    finally:
        removed = sandbox_cli("network", "rm", "tiso-cli")
    assert removed.returncode == 0, removed.stderr
