"""The `sandbox` command: run's statuses, one-line errors, --help, dry runs."""

import os

import pytest

from .helpers import REPO, sandbox_cli

root = pytest.mark.root


@root
def test_run_prints_output_and_exits_with_the_commands_status():
    out = sandbox_cli("run", "busybox", "--", "sh", "-c", "echo hi; echo err >&2; exit 3")
    assert (out.returncode, out.stdout, out.stderr) == (3, b"hi\n", b"err\n")


@root
def test_run_with_the_issues_flags():
    out = sandbox_cli("run", "--hostname", "t1", "-e", "A=1", "-w", "/tmp", "-v", f"{REPO}:/src:ro",
                      "busybox", "--", "sh", "-c", "head -1 /src/README.md; echo $A; hostname; pwd")
    assert out.stdout.decode().split("\n")[1:4] == ["1", "t1", "/tmp"]
    assert out.stdout.startswith(b"# sandbox")


@root
def test_statuses_for_setup_failures():
    assert sandbox_cli("run", "busybox", "--", "nosuch").returncode == 127
    assert sandbox_cli("run", "busybox", "--", "/etc/passwd").returncode == 126
    bad = sandbox_cli("run", "-w", "/etc/passwd", "busybox", "--", "true")
    assert bad.returncode == 125 and bad.stderr.startswith(b"sandbox: error: container setup failed at workdir")
    assert sandbox_cli("run", "busybox", "--", "sh", "-c", "kill -KILL $$").returncode == 137


@root
def test_stdin_with_dash_i():
    out = sandbox_cli("run", "-i", "busybox", "--", "wc", "-l", input=b"a\nb\nc\n")
    assert out.stdout.strip() == b"3"


@pytest.mark.parametrize("args, fragment", [
    (["run", "--memory", "lots", "busybox", "--", "true"], b"invalid memory 'lots'"),
    (["run", "--cpus", "-1", "busybox", "--", "true"], b"invalid cpus"),
    (["run", "host"], b"image host has no CMD or ENTRYPOINT"),
    (["run", "-v", "/nonexistent:/x", "busybox", "--", "true"], b"invalid mount source"),
    (["run", "--bogus", "busybox", "--", "true"], b"unrecognized arguments"),
    (["frobnicate"], b"invalid choice"),
])
def test_bad_input_gets_one_line_and_125(args, fragment):
    out = sandbox_cli(*args)
    assert out.returncode == 125
    assert fragment in out.stderr and out.stderr.count(b"\n") == 1


def test_help_lists_the_verbs_and_the_limits():
    out = sandbox_cli("--help")
    for verb in (b"run", b"ps", b"rm", b"gc", b"logs", b"image", b"doctor"):
        assert verb in out.stdout
    run_help = sandbox_cli("run", "--help").stdout
    assert b"--memory" in run_help and b"default 1g" in run_help and b"127 not found" in run_help


def test_dry_run_prints_the_plan_without_running(tmp_path):
    out = sandbox_cli("run", "--dry-run", "busybox", "--", "true")
    assert out.returncode == 0 and b"pivot_root" in out.stdout and b"exec true" in out.stdout
    assert not os.listdir(os.path.join(os.environ["SANDBOX_RUN_DIR"], "sandboxes")) \
        if os.path.isdir(os.path.join(os.environ["SANDBOX_RUN_DIR"], "sandboxes")) else True


@pytest.mark.root
@pytest.mark.parametrize("network", ["none", "bridge"])
def test_the_dry_run_prints_exactly_the_plan_a_run_performs(network, tmp_path):
    """The same steps, cgroup and network included; only the run's id and address differ."""
    from sandbox import Limits, Mount, NetworkSpec, Sandbox, SandboxSpec

    net = NetworkSpec(network, egress=network == "bridge",
                      publish=("18473:80",) if network == "bridge" else ())
    spec = SandboxSpec(image="busybox", command=["sh", "-c", "true"], network=net,
                       mounts=(Mount(str(tmp_path), "/data"),), workdir="/work",
                       limits=Limits(memory="64m", pids=32, cpus=0.5, timeout="30s"))
    args = ["run", "--dry-run", "--network", network, "-v", f"{tmp_path}:/data", "-w", "/work",
            "--memory", "64m", "--pids", "32", "--cpus", "0.5", "--timeout", "30s"]
    if network == "bridge":
        args += ["--egress", "-p", "18473:80"]
    printed = sandbox_cli(*args, "busybox", "--", "sh", "-c", "true")
    assert printed.returncode == 0, printed.stderr
    with Sandbox(spec, log_file=False) as box:
        ran = box.plan.describe().replace(box.id, "<id>")
        if box.network is not None:
            ran = ran.replace(box.network.address, "<address>")
        assert box.wait().exit_code == 0
    assert printed.stdout.decode().strip() == ran
    assert "on the host: make cgroup" in ran and "join cgroup" in ran
    if network == "bridge":
        assert "on the host: lease <address> on network bridge" in ran
        assert "connect eth0 to network bridge" in ran and "open a netlink socket" in ran
