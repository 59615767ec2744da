"""Networks as data and files (no root): addresses, leases, names, subnets, plan ops."""

import multiprocessing
import os
from concurrent.futures import ThreadPoolExecutor

import pytest

from sandbox import NetworkError, NetworkSpec, SandboxSpec, SpecError
from sandbox.network import _connect, ipam, registry
from sandbox.network.model import Network, bridge_name, mac_for, parse_subnet, veth_name

SMALL = Network("unit", "sbxunit", "10.231.7.0/29")  # 5 member addresses


def test_addresses_follow_the_gateway_and_wrap():
    net = Network("n", "sbxn", "10.231.0.0/24")
    assert net.gateway == "10.231.0.1" and net.prefixlen == 24 and net.size == 253
    assert net.address(0) == "10.231.0.2" and net.address(252) == "10.231.0.254"
    assert net.address(253) == "10.231.0.2"
    assert net.index("10.231.0.9") == 7


def test_names_fit_the_kernel_and_macs_follow_addresses():
    assert veth_name("0123456789ab") == "vsb0123456789ab" and len(veth_name("0123456789ab")) == 15
    assert bridge_name("db", "/a") != bridge_name("db", "/b")
    assert len(bridge_name("a-very-long-network-name", "/x")) <= 15
    assert mac_for("10.200.1.2") == "02:5b:0a:c8:01:02"


@pytest.mark.parametrize("bad", ["10.0.0.0/33", "10.0.0.1/24", "nope", "10.0.0.0/30", "10.0.0.0/4"])
def test_bad_subnets_are_one_clear_error(bad):
    with pytest.raises(NetworkError, match="invalid subnet"):
        parse_subnet(bad)


def test_network_spec_validation():
    with pytest.raises(SpecError, match="egress"):
        NetworkSpec("none", egress=True)
    with pytest.raises(SpecError, match="publish"):
        NetworkSpec("host", publish=("8080:80",))
    with pytest.raises(SpecError, match="network"):
        NetworkSpec("no/such")
    assert NetworkSpec("bridge", publish=("8080:80",)).publish[0].host_port == 8080


def test_leases_are_distinct_across_threads():
    with ThreadPoolExecutor(max_workers=16) as pool:
        addresses = list(pool.map(lambda i: ipam.allocate(Network("thr", "sbxthr", "10.231.8.0/24"),
                                                          f"id{i}", None), range(100)))
    assert len(set(addresses)) == 100


def _allocate_many(args):
    worker, count = args
    net = Network("proc", "sbxproc", "10.231.9.0/24")
    return [ipam.allocate(net, f"w{worker}-{i}", None) for i in range(count)]


def test_leases_are_distinct_across_processes():
    with multiprocessing.get_context("spawn").Pool(6) as pool:
        chunks = pool.map(_allocate_many, [(w, 30) for w in range(6)])
    addresses = [a for chunk in chunks for a in chunk]
    assert len(addresses) == 180 and len(set(addresses)) == 180


def test_allocation_is_round_robin_and_exhaustion_is_clear():
    got = [ipam.allocate(SMALL, f"s{i}", None) for i in range(5)]
    assert got == [f"10.231.7.{n}" for n in range(2, 7)]
    with pytest.raises(NetworkError, match="no free address left"):
        ipam.allocate(SMALL, "s5", None)
    ipam.release(SMALL, "10.231.7.3", "s1")
    assert ipam.allocate(SMALL, "s6", None) == "10.231.7.3"
    ipam.forget(SMALL)


def test_only_the_holder_releases_an_address():
    net = Network("hold", "sbxhold", "10.231.10.0/24")
    address = ipam.allocate(net, "owner", None)
    ipam.release(net, address, "someone-else")
    assert [lease.address for lease in ipam.members(net)] == [address]
    ipam.release(net, address, "owner")
    assert ipam.members(net) == []


def test_hosts_file_names_members_and_is_rewritten_in_place():
    net = Network("hosts", "sbxhosts", "10.231.11.0/24")
    db = ipam.allocate(net, "a", "db")
    inode = os.stat(ipam.hosts_path(net)).st_ino
    web = ipam.allocate(net, "b", "web")
    text = ipam.hosts_path(net).read_text()
    assert f"{db}\tdb\n" in text and f"{web}\tweb\n" in text and text.startswith("127.0.0.1")
    with pytest.raises(NetworkError, match="'db' is already taken"):
        ipam.allocate(net, "c", "db")
    ipam.release(net, db, "a")
    assert "db" not in ipam.hosts_path(net).read_text()
    assert os.stat(ipam.hosts_path(net)).st_ino == inode


@pytest.mark.parametrize("name, message", [("none", "built-in mode"), ("host", "built-in mode"),
                                           ("bridge", "built-in mode"), ("bad/name", "invalid network name")])
def test_reserved_and_bad_network_names(name, message):
    with pytest.raises(NetworkError, match=message):
        registry.create(name)


def test_unknown_network_is_one_clear_error():
    with pytest.raises(NetworkError, match="no such network: 'nosuch'") as info:
        registry.get("nosuch")
    assert "\n" not in str(info.value) and info.value.exit_status == 125


def test_subnet_overlapping_a_host_route_is_refused():
    net, _dev = next((n, d) for n, d in registry.host_routes() if n.prefixlen > 0)
    with pytest.raises(NetworkError, match=f"overlaps {net}"):
        registry.create("overlap", str(net))
    assert not (registry.networks_dir() / "overlap.json").exists()


def test_attachment_plan_ops_are_data():
    import struct

    from sandbox.linux.rtnetlink import INDEX_OFFSET, with_index
    from sandbox.network.ipam import hosts_path

    net = Network("ops", "sbxops", "10.231.12.0/24")
    att = _connect(net, "0123456789ab", "10.231.12.2", "db", False, (), master=7)
    assert [op.kind for op in att.pre_ops] == ["host_netlink"]
    (plug,) = att.ops
    interface, veth, address, up, route = plug.args
    assert plug.kind == "plug" and interface == "eth0"
    assert all(isinstance(r, bytes) for r in plug.args[1:])
    # the veth request names both ends, the bridge and the peer's MAC (pyroute2's encoding)
    assert b"vsb0123456789ab" in veth and b"eth0" in veth and bytes.fromhex("025b0ae70c02") in veth
    assert bytes([10, 231, 12, 2]) in address and bytes([10, 231, 12, 1]) in route
    # the first process sets eth0's index, unknown until the pair exists
    assert struct.unpack_from("=i", with_index(address, 5), INDEX_OFFSET)[0] == 5
    assert struct.unpack_from("=i", with_index(up, 5), INDEX_OFFSET)[0] == 5
    assert att.binds == ((str(hosts_path(net)), "/etc/hosts"),)
    assert att.as_record()["veth"] == "vsb0123456789ab"


def test_an_isolated_network_s_plug_isolates_the_port_and_its_firewall_drops_hairpins():
    from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg

    from sandbox.network import firewall

    net = Network("iso", "sbxiso", "10.231.13.0/24", isolated=True)
    att = _connect(net, "0123456789ab", "10.231.13.2", "s1", False, (), master=7)
    (plug,) = att.ops
    assert len(plug.args) == 6 and "its bridge port isolated" in plug.step
    assert "isolated" in att.describe()
    msg = ifinfmsg(plug.args[5])
    msg.decode()
    assert msg.get_attr("IFLA_IFNAME") == "vsb0123456789ab"  # the host's end, found by name
    slave = msg.get_attr("IFLA_LINKINFO").get_attr("IFLA_INFO_SLAVE_DATA")
    assert slave.get_attr("IFLA_BRPORT_ISOLATED") == 1
    assert 'iifname "sbxiso" oifname "sbxiso" counter drop' in firewall.rules(net)
    # a network that is not isolated: no such request, members forwarded to each other
    plain = Network("plain", "sbxplain", "10.231.14.0/24")
    (plug,) = _connect(plain, "0123456789ab", "10.231.14.2", "s1", False, (), master=7).ops
    assert len(plug.args) == 5 and "isolated" not in plug.step
    assert 'iifname "sbxplain" oifname "sbxplain" accept' in firewall.rules(plain)


def test_whether_a_network_is_isolated_is_kept_in_its_definition(monkeypatch, tmp_path):
    monkeypatch.setattr(registry, "networks_dir", lambda: tmp_path)
    monkeypatch.setattr(registry.bridge, "create", lambda network: None)  # no root here
    monkeypatch.setattr(registry.bridge, "exists", lambda network: False)
    made = registry.create("kept-iso", "10.231.15.0/24", isolated=True)
    assert made.isolated and registry.get("kept-iso") == made
    assert not registry.create("kept-plain", "10.231.16.0/24").isolated
    assert not registry.get("kept-plain").isolated


def test_spec_with_network_name_round_trips():
    spec = SandboxSpec(image="busybox", command=["true"], network="ci")
    assert spec.network.mode == "ci" and spec.network.isolated
