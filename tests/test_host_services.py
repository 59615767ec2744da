"""A sandbox on a network reaches no service of the host, but the ports it is given.

Before, a Redis listening on 0.0.0.0 answered any sandbox on a bridge
through its gateway address. The network's nftables table now drops what
comes from the bridge for the host itself but replies, and what
``--allow-host-port`` opens for one member; members still reach each
other and -p still works (tests/test_network.py).
"""

from __future__ import annotations

import selectors
import socket
import subprocess
import threading

import pytest

from sandbox import Limits, NetworkSpec, SandboxSpec, SpecError, run
from sandbox.network import firewall, registry

from .helpers import sandbox_cli

pytestmark = pytest.mark.root

#: From inside (the host image's python3, as busybox's nc has no UDP): the gateway (the
#: host's address on the bridge), then a TCP and a UDP try; the service answers "pong" to both.
PROBE = """
import socket, struct
with open("/proc/net/route") as f:
    gw = next(socket.inet_ntoa(struct.pack("<L", int(r.split()[2], 16)))
              for r in list(f)[1:] if r.split()[1] == "00000000")
def answer(kind, send):
    s = socket.socket(socket.AF_INET, kind)
    s.settimeout(2)
    try:
        s.connect((gw, PORT))
        send(s)
        return "reached" if s.recv(16).startswith(b"pong") else "blocked"
    except OSError:
        return "blocked"
    finally:
        s.close()
print("tcp-" + answer(socket.SOCK_STREAM, lambda s: None))
print("udp-" + answer(socket.SOCK_DGRAM, lambda s: s.send(b"ping")))
"""


@pytest.fixture
def host_service():
    """A TCP and a UDP service on every address of the host, as a careless Redis is: each
    answers "pong" (TCP: to every connection, then closes it)."""
    tcp = socket.socket()
    tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    tcp.bind(("0.0.0.0", 0))
    tcp.listen()
    port = tcp.getsockname()[1]
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("0.0.0.0", port))
    stop = threading.Event()

    def answer() -> None:
        with selectors.DefaultSelector() as sel:
            sel.register(tcp, selectors.EVENT_READ)
            sel.register(udp, selectors.EVENT_READ)
            while not stop.is_set():
                for key, _ in sel.select(0.2):
                    if key.fileobj is tcp:
                        conn, _ = tcp.accept()
                        with conn:
                            conn.sendall(b"pong\n")
                    else:
                        _, peer = udp.recvfrom(64)
                        udp.sendto(b"pong\n", peer)

    thread = threading.Thread(target=answer)
    thread.start()
    try:
        yield port
    finally:
        stop.set()
        thread.join()
        tcp.close()
        udp.close()


def probe(port: int, network: str = "bridge", **net) -> list[str]:
    result = run(SandboxSpec(image="host", command=["python3", "-c", PROBE.replace("PORT", str(port))],
                             network=NetworkSpec(network, **net), limits=Limits(timeout=60)),
                 log_file=False)
    return result.stdout.decode().split()


def test_a_host_service_on_every_address_is_not_reachable_from_a_bridge(host_service):
    assert probe(host_service) == ["tcp-blocked", "udp-blocked"]


def test_allow_host_port_opens_that_port_for_that_sandbox_only(host_service):
    assert probe(host_service, allow_host_ports=(host_service,)) == ["tcp-reached", "udp-reached"]
    assert probe(host_service, allow_host_ports=(host_service + 1,)) == ["tcp-blocked", "udp-blocked"]
    network = registry.get("bridge")
    elements = firewall.nft(f"list set ip {network.firewall_table} host_ports\n", what="listing")
    assert str(host_service) not in elements  # given back with the sandbox


def test_a_named_network_s_members_are_kept_off_the_host_too(host_service):
    registry.create("hostsvc")
    try:
        assert probe(host_service, "hostsvc") == ["tcp-blocked", "udp-blocked"]
        assert probe(host_service, "hostsvc", allow_host_ports=(host_service,))[0] == "tcp-reached"
    finally:
        registry.remove("hostsvc")


def test_a_bridge_made_by_an_older_version_gets_the_new_rules_and_keeps_its_members(host_service):
    network = registry.get("bridge")
    registry.ensure(network)
    table = network.firewall_table
    old = (f"flush chain ip {table} input\ndelete set ip {table} host_ports\n"
           f"add rule ip {table} input iifname \"{network.bridge}\" ip daddr 127.0.0.0/8 "
           "ct direction original drop\n"
           f"add element ip {table} egress {{ 10.99.0.9 }}\n")
    subprocess.run(["nft", "-f", "-"], input=old, text=True, check=True)
    firewall._marker(network).unlink()
    assert probe(host_service)[0] == "tcp-blocked"  # brought up to date before the sandbox ran
    rules = firewall.list_rules(network)
    assert "@host_ports" in rules and "10.99.0.9" in rules
    subprocess.run(["nft", "delete", "element", "ip", table, "egress", "{ 10.99.0.9 }"], check=True)


def test_allow_host_port_needs_a_network_and_a_port():
    for bad, says in ((dict(allow_host_ports=(80,)), "--network bridge or a named network"),
                      (dict(mode="bridge", allow_host_ports=(0,)), "port numbers from 1 to 65535"),
                      (dict(mode="bridge", allow_host_ports=("http",)), "port numbers")):
        with pytest.raises(SpecError) as info:
            NetworkSpec(**bad)
        assert says in str(info.value)
    cli = sandbox_cli("run", "--allow-host-port", "6379", "busybox", "--", "true")
    assert cli.returncode == 125 and cli.stderr.count(b"\n") == 1 and b"allow_host_ports" in cli.stderr


def test_the_marker_s_allow_host_ports_go_into_its_network():
    from pytest_sandbox.settings import with_host_ports

    assert with_host_ports("bridge", [8080]) == NetworkSpec("bridge", allow_host_ports=(8080,))
    assert with_host_ports(NetworkSpec("bridge", alias="a"), 53).allow_host_ports == (53,)



def test_a_job_s_network_keeps_its_steps_and_services_off_the_host(host_service, tmp_path):
    """A job's own network (jobs.jobnet) is a named network like any other: its steps, with
    or without egress, and its services reach no service of the host."""
    from jobs import load_job_file, run_job

    from .jobs_support import job_file

    (spec,) = load_job_file(job_file(tmp_path, """
        name = "host services"
        image = "host"
        workspace = "ws"
        [services.prober]
        command = 'python3 -c "$PROBE"; touch /tmp/probed; exec sleep 60'
        ready = "test -e /tmp/probed"
        env = { PROBE = "PROBE_TEXT" }
        [[steps]]
        name = "on the job's network"
        network = "bridge"
        run = "python3 probe.py"
        [[steps]]
        name = "with egress"
        egress = true
        run = "python3 probe.py"
    """.replace("PROBE_TEXT", PROBE.replace("PORT", str(host_service)).replace("\n", "\\n")
                 .replace('"', '\\"')),
        {"probe.py": PROBE.replace("PORT", str(host_service))}))
    events = []
    result = run_job(spec, on_event=events.append)
    assert result.status == "passed", [(e.step, e.data) for e in events if e.data]
    out = {name: b"".join(e.data for e in events if e.kind == "out"
                          and name in (e.step, e.fields.get("service")))
           for name in ("on the job's network", "with egress", "prober")}
    assert out == dict.fromkeys(out, b"tcp-blocked\nudp-blocked\n")


def test_a_job_s_allow_host_ports_open_that_port_for_its_steps_and_services(host_service, tmp_path):
    from jobs import load_job_file, run_job

    from .jobs_support import job_file

    (spec,) = load_job_file(job_file(tmp_path, f"""
        name = "allowed"
        image = "host"
        workspace = "ws"
        [security]
        allow_host_ports = [{host_service}]
        [services.prober]
        command = 'python3 -c "$PROBE"; touch /tmp/probed; exec sleep 60'
        ready = "test -e /tmp/probed"
        env = {{ PROBE = "PROBE_TEXT" }}
        [[steps]]
        name = "on the job's network"
        network = "bridge"
        run = "python3 probe.py"
    """.replace("PROBE_TEXT", PROBE.replace("PORT", str(host_service)).replace("\n", "\\n")
                 .replace('"', '\\"')),
        {"probe.py": PROBE.replace("PORT", str(host_service))}))
    assert spec.allow_host_ports == (host_service,)
    events = []
    result = run_job(spec, on_event=events.append)
    assert result.status == "passed", [(e.step, e.data) for e in events if e.data]
    out = {name: b"".join(e.data for e in events if e.kind == "out"
                          and name in (e.step, e.fields.get("service")))
           for name in ("on the job's network", "prober")}
    assert out == dict.fromkeys(out, b"tcp-reached\nudp-reached\n")


@pytest.mark.parametrize("security, says", [
    ("allow_host_ports = [0]", "a list of TCP/UDP ports from 1 to 65535"),
    ("allow_host_ports = ['http']", "a list of TCP/UDP ports from 1 to 65535"),
    ("allow_host_ports = 80", "a list of TCP/UDP ports from 1 to 65535"),
    ("allow_host_ports = [80]", "given in a job without a network"),
])
def test_a_job_file_s_allow_host_ports_must_be_ports_on_a_network(tmp_path, security, says):
    from jobs import JobFileError, load_job_file

    job = tmp_path / "job.toml"
    job.write_text(f'name = "j"\n[security]\n{security}\n[[steps]]\nname = "s"\nrun = "true"\n')
    with pytest.raises(JobFileError) as info:
        load_job_file(job)
    assert "security.allow_host_ports" in str(info.value) and says in str(info.value)
    assert "\n" not in str(info.value)
