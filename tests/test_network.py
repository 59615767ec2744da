"""Networks in real namespaces: none, bridge, named networks, -p, --egress, gc.

Traffic only goes to loopback or to addresses of namespaces these tests make.
"""

import ipaddress
import os
import signal
import socket
import subprocess
from concurrent.futures import ThreadPoolExecutor

import pytest

from sandbox import NetworkSpec, Sandbox, SandboxSpec, gc, run
from sandbox.network import firewall, ipam, persistent_links, registry

from .helpers import popen_cli, sandbox_cli, wait_for

pytestmark = pytest.mark.root


def spec(command, network="bridge", **kw):
    return SandboxSpec(image="busybox", command=["sh", "-c", command],
                       network=NetworkSpec(network, **kw) if isinstance(network, str) else network)


@pytest.fixture
def networks():
    """Named networks made by a test, removed after it (members gone first)."""
    made = []

    def make(name, subnet=None):
        made.append(registry.create(name, subnet))
        return made[-1]

    yield make
    for network in made:
        registry.remove(network.name)


def _listener():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    return server


def _read_from(address, port):
    """Connect from the host (retrying until the server listens); all it sends."""
    def attempt():
        try:
            with socket.create_connection((address, port), timeout=5) as conn:
                return conn.makefile("rb").read() or None
        except OSError:
            return None
    return wait_for(attempt)


def test_none_has_only_loopback_up_and_no_way_to_host_ports():
    with _listener() as server:
        port = server.getsockname()[1]
        result = run(spec(f"ip -o link; nc -w 1 127.0.0.1 {port} </dev/null; echo nc=$?", "none"))
    links = [line.split(":")[1].strip() for line in result.stdout.decode().splitlines()
             if line[:1].isdigit()]
    assert links == ["lo"]
    assert b"UP" in result.stdout.splitlines()[0]
    assert result.stdout.strip().endswith(b"nc=1")


def test_two_bridge_sandboxes_exchange_a_message_over_tcp():
    server_cmd = "nc -l -p 5000 -e sh -c 'read line; echo \"got $line\" >&2; echo \"reply to $line\"'"
    with Sandbox(spec(server_cmd)) as server:
        address = server.network.address
        client = run(spec(f"ip -4 -o addr show eth0; until echo hello | nc -w 2 {address} 5000;"
                          " do sleep 0.05; done"))
        result = server.wait()
    assert client.exit_code == 0 and result.exit_code == 0
    assert result.stderr == b"got hello\n" and client.stdout.endswith(b"reply to hello\n")
    client_address = client.stdout.split()[3].split(b"/")[0].decode()
    assert client_address != address
    subnet = registry.get("bridge").net
    assert ipaddress.ip_address(client_address) in subnet and ipaddress.ip_address(address) in subnet


def test_host_reaches_a_server_inside_by_its_address():
    with Sandbox(spec("echo served-from-inside | nc -l -p 5001")) as server:
        assert _read_from(server.network.address, 5001) == b"served-from-inside\n"
        assert server.wait().exit_code == 0


def test_named_network_members_reach_each_other_by_name_and_others_cannot(networks):
    networks("tnet-a")
    other = networks("tnet-b")
    with Sandbox(spec("echo pong | nc -l -p 5002", "tnet-a", alias="db")) as db:
        address = db.network.address
        outsider = run(spec(f"nc -w 1 db 5002; echo byname=$?; nc -w 1 {address} 5002; echo byaddr=$?",
                            other.name))
        member = run(spec("cat /etc/hosts; until nc -w 2 db 5002; do sleep 0.05; done", "tnet-a",
                          alias="client"))
        assert db.wait().exit_code == 0
    assert outsider.stdout.splitlines()[-2:] == [b"byname=1", b"byaddr=1"]
    assert f"{address}\tdb".encode() in member.stdout
    assert member.stdout.endswith(b"pong\n")


def test_twenty_concurrent_bridge_sandboxes_get_distinct_addresses_and_leave_nothing():
    network = registry.get("bridge")
    with ThreadPoolExecutor(max_workers=20) as pool:
        results = list(pool.map(lambda _: run(spec("ip -4 -o addr show eth0")), range(20)))
    addresses = {r.stdout.split()[3] for r in results}
    assert all(r.exit_code == 0 for r in results) and len(addresses) == 20
    wait_for(lambda: not os.listdir(f"/sys/class/net/{network.bridge}/brif"))
    assert ipam.members(network) == []
    bridge_addresses = subprocess.run(["ip", "-4", "-o", "addr", "show", network.bridge],
                                      capture_output=True, text=True).stdout
    assert bridge_addresses.count("inet ") == 1 and f"{network.gateway}/" in bridge_addresses


def test_published_port_reaches_the_sandbox_from_host_loopback():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        host_port = probe.getsockname()[1]
    with Sandbox(spec("echo published | nc -l -p 80", publish=(f"{host_port}:80",))) as sb:
        assert _read_from("127.0.0.1", host_port) == b"published\n"
        assert sb.wait().exit_code == 0
    assert f"{host_port} :" not in firewall.list_rules(registry.get("bridge"))


def test_egress_is_opt_in_and_its_nat_entry_goes_with_the_sandbox():
    network = registry.get("bridge")
    with Sandbox(spec("sleep 30", egress=True)) as sb:
        rules = firewall.list_rules(network)
        assert sb.network.address in rules and "masquerade" in rules
        sb.kill()
        sb.wait()
    assert sb.network.address not in firewall.list_rules(network)


def test_cli_network_lifecycle_and_bad_input():
    created = sandbox_cli("network", "create", "tnet-cli", "--subnet", "10.231.40.0/24")
    assert created.returncode == 0, created.stderr
    try:
        assert b"tnet-cli" in sandbox_cli("network", "ls").stdout
        for args, message in [(("network", "create", "tnet-cli"), b"already exists"),
                              (("network", "create", "tnet-x", "--subnet", "10.231.40.128/25"),
                               b"overlaps 10.231.40.0/24"),
                              (("run", "--network", "nosuch", "busybox", "--", "true"),
                               b"no such network: 'nosuch'")]:
            bad = sandbox_cli(*args)
            assert bad.returncode == 125 and message in bad.stderr
            assert len(bad.stderr.splitlines()) == 1
        assert not (registry.networks_dir() / "tnet-x.json").exists()
        with Sandbox(spec("sleep 30", "tnet-cli")) as sb:
            busy = sandbox_cli("network", "rm", "tnet-cli")
            assert busy.returncode == 125 and b"has 1 member" in busy.stderr
            sb.kill()
            sb.wait()
    finally:
        removed = sandbox_cli("network", "rm", "tnet-cli")
    assert removed.returncode == 0, removed.stderr
    assert not firewall.table_exists("sandbox_" + created.stdout.split()[-1].rstrip(b")").decode())


def test_a_killed_owner_leaves_nothing_gc_does_not_remove():
    proc = popen_cli("run", "--network", "bridge", "--name", "tnet-crash", "busybox", "--", "sleep", "60")
    network = registry.get("bridge")
    wait_for(lambda: any(lease.alias == "tnet-crash" for lease in ipam.members(network)))
    wait_for(lambda: os.listdir(f"/sys/class/net/{network.bridge}/brif"))
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    gc.collect()
    wait_for(lambda: not os.listdir(f"/sys/class/net/{network.bridge}/brif"))
    assert ipam.members(network) == []


def test_a_temporary_network_goes_with_the_process_that_made_it():
    import sys

    made = subprocess.run([sys.executable, "-c", "from sandbox import create_network; "
                           "print(create_network('tnet-tmp', temporary=True)['bridge'])"],
                          capture_output=True, text=True, check=True)
    bridge = made.stdout.strip()
    assert registry.is_temporary("tnet-tmp") and os.path.exists(f"/sys/class/net/{bridge}")
    assert bridge not in persistent_links()
    assert not registry.is_temporary("bridge")
    report = gc.collect()
    assert "network tnet-tmp (its owner died)" in report.removed, report
    assert not os.path.exists(f"/sys/class/net/{bridge}") and "tnet-tmp" not in [
        n.name for n in registry.list_networks()]
    assert not firewall.table_exists(f"sandbox_{bridge}")
