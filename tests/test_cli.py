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
