"""SandboxSpec validation and units: every bad value names its field and what is accepted."""

import pytest

from sandbox import Limits, Mount, NetworkSpec, SandboxSpec, SpecError, Ulimit
from sandbox.units import format_size, parse_duration, parse_size


@pytest.mark.parametrize("text, expected", [
    ("256m", 256 << 20), ("1g", 1 << 30), ("512k", 512 << 10), ("1.5g", int(1.5 * (1 << 30))),
    ("64MiB", 64 << 20), ("100", 100), (4096, 4096), ("none", None), ("0", None), (None, None),
])
def test_sizes(text, expected):
    assert parse_size("memory", text) == expected


@pytest.mark.parametrize("bad", ["lots", "-1m", "1x", "", "m", True, -5])
def test_bad_sizes_name_the_field(bad):
    with pytest.raises(SpecError) as info:
        parse_size("memory", bad)
    assert "memory" in str(info.value) and "256m" in str(info.value)


@pytest.mark.parametrize("text, expected", [
    ("30s", 30.0), ("10m", 600.0), ("1h30m", 5400.0), ("500ms", 0.5), (2, 2.0), ("1.5", 1.5),
    ("none", None), (0, None),
])
def test_durations(text, expected):
    assert parse_duration("timeout", text) == expected


@pytest.mark.parametrize("bad", ["soon", "10 minutes", "-1s", "1h-1m"])
def test_bad_durations(bad):
    with pytest.raises(SpecError, match="timeout"):
        parse_duration("timeout", bad)


def test_limits_normalise_strings_and_reject_bad_values():
    limits = Limits(memory="64m", cpus="0.5", pids="128", timeout="1m", output="1m", disk="32m")
    assert (limits.memory, limits.cpus, limits.pids, limits.timeout) == (64 << 20, 0.5, 128, 60.0)
    assert Limits(memory="none", pids=0, cpus=0).memory is None
    for field, value in [("memory", "lots"), ("cpus", -1), ("cpus", "x"), ("pids", -3),
                         ("cpuset", "a-b"), ("memory", "1m")]:
        with pytest.raises(SpecError, match=field):
            Limits(**{field: value})


def test_ulimits_parse_and_validate():
    assert Ulimit.parse("nofile=1024") == Ulimit("nofile", 1024, 1024)
    assert Ulimit.parse("nofile=512:1024") == Ulimit("nofile", 512, 1024)
    for bad in ["nofile", "bogus=1", "nofile=x", "nofile=10:5"]:
        with pytest.raises(SpecError, match="ulimit"):
            Ulimit.parse(bad)


def test_spec_validation(tmp_path):
    spec = SandboxSpec(image="busybox", command=["true"], limits={"memory": "64m"}, network="none")
    assert spec.command == ("true",) and spec.limits.memory == 64 << 20
    assert isinstance(spec.network, NetworkSpec)
    bad = [
        dict(command="echo hi"), dict(command=[""]), dict(command=[1]), dict(workdir="tmp"),
        dict(hostname="bad_host!"), dict(env={"1A": "x"}), dict(env={"A": 1}), dict(user="a:b:c"),
        dict(name="has space"), dict(capabilities=["CAP_NOPE"]), dict(image=""),
    ]
    for changes in bad:
        args = {"image": "busybox", "command": ["true"], **changes}
        with pytest.raises(SpecError):
            SandboxSpec(**args)


@pytest.mark.parametrize("bad", [5, 3.5, object()])
def test_capabilities_that_are_no_list_are_a_spec_error(bad):
    # found by the type checker: iterating them raised TypeError, not one clear line
    with pytest.raises(SpecError, match=r"capabilities .*expected a list of Linux capability names"):
        SandboxSpec(image="busybox", command=["true"], capabilities=bad)


def test_mounts(tmp_path):
    m = Mount.parse(f"{tmp_path}:/data")
    assert m.read_only and m.target == "/data"
    assert not Mount.parse(f"{tmp_path}:/data:rw").read_only
    for bad in [f"{tmp_path}", f"{tmp_path}:/data:xx", f"{tmp_path}/nope:/d", f"{tmp_path}:rel",
                f"{tmp_path}:/"]:
        with pytest.raises(SpecError):
            Mount.parse(bad)
    with pytest.raises(SpecError, match="at most once"):
        SandboxSpec(image="busybox", command=["true"],
                    mounts=[Mount(str(tmp_path), "/a"), Mount(str(tmp_path), "/a")])


def test_network_spec():
    assert NetworkSpec().mode == "none" and NetworkSpec().isolated
    assert not NetworkSpec("host").isolated
    with pytest.raises(SpecError):
        NetworkSpec("none", egress=True)
    with pytest.raises(SpecError):
        NetworkSpec("bridge", publish=("80",))


def test_format_size():
    assert format_size(64 << 20) == "64 MiB" and format_size(None) == "unlimited"
    assert format_size(1536) == "1.5 KiB"
