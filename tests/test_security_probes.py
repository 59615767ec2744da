"""A battery of probes inside sandboxes, against runc with Docker's default seccomp profile.

tests/probes/probe.c, built static here, tries what a container must not do
(make namespaces, mount, load modules, read keyrings, bpf, perf, ptrace a
process outside, write /proc/sys and /sys, read host secrets and disks,
reach the host's abstract unix sockets and loopback services) and prints a
verdict per probe. The same binary runs in a busybox and a host sandbox and
under `runc run` (a bundle made from the busybox image, its config carrying
Docker's default profile as `docker run` hands it to runc); every probe must
be denied by us, and everything runc denies we must deny too. With
``seccomp="unconfined"`` the namespace probe succeeds: the filter is what
stops it.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import uuid

import pytest

from sandbox import Mount, SandboxSpec, images, run
from sandbox.linux.caps import mask
from sandbox.security import filters, profile
from sandbox.spec import DEFAULT_CAPABILITIES

from .helpers import REPO

pytestmark = pytest.mark.root

#: Probes that open a file: "empty" (masked, or a secret replaced by an empty file) is denial.
DENIED = {"denied", "killed", "empty"}
#: What Docker's default capabilities allow (CAP_NET_RAW): raw sockets, in runc too.
WITH_NET_RAW = {"raw_socket", "raw_inet"}


@pytest.fixture(scope="module")
def probe(tmp_path_factory) -> str:
    """The probe, built static (runs in any image)."""
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.skip("needs gcc and libc6-dev to build the probe (scripts/setup.sh installs them)")
    out = tmp_path_factory.mktemp("probe") / "probe"
    subprocess.run([gcc, "-static", "-O2", "-o", str(out), os.path.join(REPO, "tests/probes/probe.c")],
                   check=True, capture_output=True)
    return str(out)


@pytest.fixture
def host_services():
    """What a sandbox must not reach: an abstract unix socket and a TCP port on 127.0.0.1."""
    abstract = f"sandbox-probe-{uuid.uuid4().hex[:8]}"
    unix = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    unix.bind("\0" + abstract)
    unix.listen()
    tcp = socket.socket()
    tcp.bind(("127.0.0.1", 0))
    tcp.listen()
    try:
        yield [f"abstract={abstract}", f"loopback={tcp.getsockname()[1]}", f"outside={os.getpid()}"]
    finally:
        unix.close()
        tcp.close()


def parse(output: bytes) -> dict[str, tuple[str, ...]]:
    """probe's lines: name -> (verdict, errno or signal)."""
    found = {}
    for line in output.decode().splitlines():
        name, *verdict = line.split()
        found[name] = tuple(verdict)
    return found


def in_sandbox(probe: str, args: list[str], image: str = "busybox", **options) -> dict:
    spec = SandboxSpec(image=image, command=["/probe", *args], mounts=(Mount(probe, "/probe"),),
                       **options)
    result = run(spec, log_file=False)
    assert result.exit_code == 0, result.stderr
    found = parse(result.stdout)
    assert len(found) > 30, result.stdout
    return found


def in_runc(probe: str, args: list[str], tmp_path) -> dict:
    """The probes in `runc run`: the busybox image's files, Docker's capabilities and default
    seccomp profile, no_new_privs, runc's masked and read-only paths, no network."""
    bundle = tmp_path / "bundle"
    shutil.copytree(images.get("busybox").layers[0], bundle / "rootfs", symlinks=True)
    shutil.copy2(probe, bundle / "rootfs/probe")
    subprocess.run(["runc", "spec"], cwd=bundle, check=True)
    config = json.loads((bundle / "config.json").read_text())
    caps = [f"CAP_{c}" for c in DEFAULT_CAPABILITIES]
    config["process"].update(args=["/probe", *args], terminal=False, noNewPrivileges=True,
                             capabilities=dict.fromkeys(("bounding", "effective", "permitted"), caps))
    config["root"]["readonly"] = False
    resolved = profile.resolve(profile.load("default"), filters.capability_names(mask(DEFAULT_CAPABILITIES)))
    config["linux"]["seccomp"] = profile.to_oci(resolved)
    config["linux"]["namespaces"].append({"type": "cgroup"})
    (bundle / "config.json").write_text(json.dumps(config))
    name = f"sandbox-probe-{uuid.uuid4().hex[:8]}"
    proc = subprocess.run(["runc", "--root", str(tmp_path / "runc"), "run", "--bundle", str(bundle), name],
                          stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return parse(proc.stdout)


def denied(found: dict) -> set[str]:
    return {name for name, verdict in found.items() if verdict[0] in DENIED}


def test_busybox_denies_every_probe_and_everything_runc_denies(probe, host_services, tmp_path):
    if not shutil.which("runc"):
        pytest.skip("needs runc (scripts/setup.sh installs it)")
    ours = in_sandbox(probe, host_services)
    theirs = in_runc(probe, host_services, tmp_path)
    assert set(ours) == set(theirs)
    assert denied(theirs) <= denied(ours), {n: (ours[n], theirs[n]) for n in denied(theirs) - denied(ours)}
    assert set(ours) - denied(ours) == WITH_NET_RAW, ours
    assert ours["userns"] == ("denied", "1") and ours["clone3"] == ("denied", "38")  # EPERM; ENOSYS
    assert ours["abstract"][0] == ours["loopback"][0] == "denied"
    assert theirs["userns"] == ("denied", "1")  # runc's filter as ours: the profile agrees


def test_the_host_image_denies_the_same(probe, host_services):
    ours = in_sandbox(probe, host_services, image="host")
    assert set(ours) - denied(ours) == WITH_NET_RAW, ours
    assert ours["shadow"] == ("empty",) and ours["gshadow"] == ("empty",)
    assert ours["keys"] == ("empty",)  # masked (/proc/kcore too, where the kernel has one)


def test_in_a_user_namespace_raw_sockets_are_denied_too(probe, host_services):
    """Its root has no capability over the network namespace, which the host owns."""
    ours = in_sandbox(probe, host_services, userns="auto")
    assert set(ours) == denied(ours), {n: v for n, v in ours.items() if v[0] not in DENIED}
    ours = in_sandbox(probe, host_services, image="host", userns="auto")
    assert set(ours) == denied(ours), {n: v for n, v in ours.items() if v[0] not in DENIED}


def test_without_net_raw_raw_sockets_are_denied(probe, host_services):
    caps = tuple(c for c in DEFAULT_CAPABILITIES if c != "NET_RAW")
    ours = in_sandbox(probe, host_services, capabilities=caps)
    assert set(ours) == denied(ours), {n: v for n, v in ours.items() if v[0] not in DENIED}


def test_unconfined_the_namespace_probe_succeeds_so_the_filter_is_what_denies_it(probe):
    confined = in_sandbox(probe, [])
    unconfined = in_sandbox(probe, [], seccomp="unconfined")
    assert confined["userns"][0] == "denied" and unconfined["userns"] == ("allowed",)
    assert confined["clone_newuser"][0] == "denied" and unconfined["clone_newuser"] == ("allowed",)
    assert unconfined["keyring"] == ("allowed",) and confined["keyring"][0] == "denied"
