"""Issue 6: every limit enforced by the kernel, and reported in the Result.

Real containers, as root. Each test asks for one limit, runs something that
goes past it, and checks what the Result (and `sandbox run`) says. Nothing
here asserts wall-clock durations: the cpu share is a ratio of cpu time to
wall time, and "no hang" is a generous guard, not a measurement. The suite's
autouse leak check (tests/conftest.py) verifies after each test that no
mount, cgroup, state dir or sandbox process is left.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from sandbox import Limits, SandboxSpec, SpecError, run
from sandbox.runtime import Sandbox

from .helpers import live_name

pytestmark = pytest.mark.root

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CGROUP_PARENT = os.environ.get("SANDBOX_CGROUP_PARENT", "sandbox")
MiB = 1 << 20

#: busybox sh: doubles a string until the memory limit stops it.
MEMORY_HOG = "x=a; while :; do x=$x$x; done"
#: the classic fork bomb, in busybox sh.
FORK_BOMB = "f(){ f | f & }; f; sleep 60"
#: a guard against a run that never ends (a hang is a failure, not a slow test).
HANG_GUARD = 30.0


def busybox(script: str, **limits) -> SandboxSpec:
    return SandboxSpec(image="busybox", command=("sh", "-c", script), limits=Limits(**limits))


def run_guarded(spec: SandboxSpec, guard: float = HANG_GUARD, **kwargs):
    """Run spec; if it has not ended after ``guard`` seconds, kill it and fail the test."""
    with Sandbox(spec, **kwargs) as sandbox:
        try:
            return sandbox.wait(guard)
        except TimeoutError:
            sandbox.kill()
            result = sandbox.wait()
            pytest.fail(f"the sandbox was still running after {guard}s (hang); after kill: "
                        f"{result.to_dict()}")


def host_processes_with(text: str) -> list[int]:
    """Host pids whose command line contains text."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if text.encode() in f.read():
                    found.append(int(pid))
        except OSError:
            continue
    return found


def host_processes_in_cgroup(sandbox_id: str) -> list[int]:
    """Host pids that are in the sandbox's cgroup (in any hierarchy), still alive.

    A zombie is left out: the sandbox's init is one for a moment after the run,
    until the zygote that forked it reaps it (its /proc/PID/cgroup still names
    the removed cgroup); the VM lane, slower, sees that moment.
    """
    found = []
    needle = f"/{CGROUP_PARENT}/{sandbox_id}"
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cgroup") as f:
                if needle in f.read() and live_name(int(pid)) is not None:
                    found.append(int(pid))
        except OSError:
            continue
    return found


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sandbox", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=120)


# -- memory -------------------------------------------------------------------

def test_memory_hog_is_oom_killed_and_the_host_is_fine():
    result = run(busybox(MEMORY_HOG, memory="32m"))
    assert result.oom_killed is True, result.to_dict()
    assert result.exit_code == 137 and result.signal == 9
    assert result.cause == "oom_killed"
    assert result.peak_memory is not None
    assert 16 * MiB < result.peak_memory <= 32 * MiB
    # the host is fine: the next sandbox runs, and this process is unharmed
    after = run(busybox("echo fine"))
    assert (after.exit_code, after.stdout, after.oom_killed) == (0, b"fine\n", False)


def test_memory_hog_in_python_of_the_host_image():
    hog = "b = []\nwhile True: b.append(bytearray(1 << 20))"
    result = run(SandboxSpec(image="host", command=("python3", "-c", hog),
                             limits=Limits(memory="64m")))
    assert result.oom_killed is True and result.exit_code == 137, result.to_dict()
    assert result.peak_memory is not None and result.peak_memory <= 64 * MiB


def test_a_process_that_stays_under_the_limit_is_not_oom_killed():
    # 16 MiB of data in a 64 MiB limit (the writes to /tmp count against memory)
    result = run(busybox("head -c 16777216 /dev/zero > /tmp/f && echo done", memory="64m"))
    assert (result.exit_code, result.oom_killed, result.stdout) == (0, False, b"done\n")
    assert result.peak_memory is not None and result.peak_memory >= 16 * MiB


# -- pids ---------------------------------------------------------------------

def test_fork_bomb_is_contained_and_nothing_survives():
    result = run_guarded(busybox(FORK_BOMB, pids=64, timeout="3s"))
    seen = host_processes_in_cgroup(result.id)
    assert seen == [], f"processes of the sandbox survived: {seen}"
    assert result.pids_limited is True, result.to_dict()
    assert result.pids_peak is not None and result.pids_peak <= 64
    assert result.exit_code != 0
    assert b"can't fork" in result.stderr


# -- cpu ----------------------------------------------------------------------

@pytest.mark.parametrize("script, timeout", [
    # the test: one busy loop for 2 s (busybox timeout ends it)
    ("timeout 2 sh -c 'while :; do :; done'", None),
    # two busy loops on a 2-core machine: the quota is for the whole cgroup
    ("while :; do :; done & while :; do :; done", "2s"),
], ids=["one-loop", "two-loops"])
def test_cpu_share_is_a_quota(script, timeout):
    result = run_guarded(busybox(script, cpus=0.25, timeout=timeout))
    assert result.cpu_time is not None and result.duration > 0
    ratio = result.cpu_time / result.duration
    assert abs(ratio - 0.25) <= 0.1, f"cpu {result.cpu_time:.3f}s / wall {result.duration:.3f}s = {ratio:.3f}"


# -- wall time ----------------------------------------------------------------

def test_timeout_kills_the_whole_tree_including_setsid_double_forks():
    token = f"sbx-mark-{uuid.uuid4().hex[:12]}"
    # two orphans in their own sessions (double fork + setsid), then sleep 60;
    # each orphan's sh keeps ``token`` as its $0, visible in the host's /proc
    marker = f"(setsid sh -c 'echo up; sleep 60; :' {token} &)"
    script = f"{marker}; {marker}; sleep 60"
    alive_during_run: list[int] = []
    lock = threading.Lock()

    def on_output(record):
        if b"up" in record.data:
            with lock:
                alive_during_run.extend(host_processes_with(token))

    result = run_guarded(busybox(script, timeout="1s"), on_output=on_output)
    assert result.timed_out is True, result.to_dict()
    assert result.exit_code == 137 and result.signal == 9
    assert result.cause == "timed_out"
    assert result.stdout.count(b"up") == 2
    assert alive_during_run, "the setsid'd markers were never seen running on the host"
    assert host_processes_with(token) == []
    assert host_processes_in_cgroup(result.id) == []


# -- output -------------------------------------------------------------------

def test_yes_with_output_limit_keeps_exactly_the_limit_and_does_not_hang():
    """The issue's test: `yes` with --output-limit 1m and nothing else must end."""
    result = run_guarded(busybox("yes", output="1m"), guard=15.0)
    assert result.output_truncated is True
    assert len(result.stdout) + len(result.stderr) == 1 << 20
    assert result.stdout == b"y\n" * (1 << 19)
    assert result.stdout_bytes >= 1 << 20


def test_output_limit_counts_what_it_drops_on_both_streams():
    result = run_guarded(busybox("yes out & yes err >&2", output="1m", timeout="1s"))
    assert result.output_truncated is True
    assert len(result.stdout) + len(result.stderr) == 1 << 20
    assert result.stdout_bytes + result.stderr_bytes > 1 << 20
    # whole lines, except where the limit cut the last one
    assert set(result.stdout.split(b"\n")[:-1]) <= {b"out"}
    assert set(result.stderr.split(b"\n")[:-1]) <= {b"err"}


# -- disk ---------------------------------------------------------------------

def test_writing_past_the_disk_limit_gets_enospc_inside_and_the_host_disk_is_untouched():
    state_fs = os.environ["SANDBOX_STATE_DIR"]
    os.makedirs(state_fs, exist_ok=True)
    before = shutil.disk_usage(state_fs).used
    result = run(busybox("dd if=/dev/zero of=/big bs=1M count=64", disk="32m"))
    after = shutil.disk_usage(state_fs).used
    assert result.exit_code != 0, result.to_dict()
    assert b"No space left on device" in result.stderr
    # 32 MiB were written inside before ENOSPC; none of it may land on the host disk
    assert after - before < 8 * MiB, f"host disk grew by {(after - before) / MiB:.1f} MiB"


def test_writing_under_the_disk_limit_works():
    result = run(busybox("dd if=/dev/zero of=/big bs=1M count=16 && ls -l /big", disk="32m"))
    assert result.exit_code == 0, result.stderr
    assert b"16777216" in result.stdout


# -- many at once -------------------------------------------------------------

CONCURRENT = [
    ("memory", MEMORY_HOG, dict(memory="32m")),
    ("timeout", "sleep 60", dict(timeout="1s")),
    ("output", "yes", dict(output="64k", timeout="1s")),
    ("pids", FORK_BOMB, dict(pids=16, timeout="2s")),
    ("cpus", "while :; do :; done", dict(cpus=0.5, timeout="1s")),
]


def test_limits_hold_with_ten_concurrent_sandboxes():
    def one(i: int):
        kind, script, limits = CONCURRENT[i % len(CONCURRENT)]
        return kind, run_guarded(busybox(script, **limits))

    with ThreadPoolExecutor(10) as pool:
        outcomes = list(pool.map(one, range(10)))
    for kind, result in outcomes:
        info = (kind, result.to_dict())
        assert host_processes_in_cgroup(result.id) == [], info
        if kind == "memory":
            assert result.oom_killed and result.exit_code == 137, info
        elif kind == "timeout":
            assert result.timed_out and result.exit_code == 137, info
        elif kind == "output":
            assert result.output_truncated and len(result.stdout) == 64 << 10, info
        elif kind == "pids":
            assert result.pids_limited and result.pids_peak <= 16, info
        elif kind == "cpus":
            # other sandboxes compete for the 2 cores, so only the cap is certain
            assert result.timed_out and result.cpu_time / result.duration <= 0.6, info
        assert not (result.oom_killed and kind != "memory"), info


# -- rlimits ------------------------------------------------------------------

def test_lowered_nofile_is_seen_inside_and_core_is_zero_by_default():
    default = run(busybox("ulimit -n; ulimit -c"))
    soft_default, core = default.stdout.split()
    assert core == b"0"  # core dumps off by default
    assert soft_default != b"256"
    result = run(busybox("ulimit -n; ulimit -Hn", ulimits=("nofile=256:512",)))
    assert result.exit_code == 0, result.stderr
    assert result.stdout.split() == [b"256", b"512"]


def test_an_rlimit_above_the_hosts_hard_limit_is_clamped_not_raised():
    import resource

    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        pytest.skip("this host's nofile hard limit is unlimited")
    result = run(busybox("ulimit -Hn", ulimits=(f"nofile={hard * 4}",)))
    assert result.exit_code == 0, result.stderr
    assert int(result.stdout) <= hard


# -- bad values ---------------------------------------------------------------

@pytest.mark.parametrize("field, value", [("memory", "lots"), ("cpus", -1), ("cpus", "x"),
                                          ("pids", -3), ("timeout", "soon"),
                                          ("disk", "big"), ("output", "-1m")])
def test_bad_limit_values_raise_spec_error_naming_the_field(field, value):
    with pytest.raises(SpecError) as info:
        Limits(**{field: value})
    assert info.value.field.startswith(field), info.value.field
    assert field in str(info.value)
    with pytest.raises(SpecError):
        SandboxSpec(image="busybox", command=("true",), limits={field: value})


# -- the CLI ------------------------------------------------------------------

@pytest.mark.parametrize("flag, value", [("--memory", "lots"), ("--cpus", "-1")])
def test_cli_bad_limit_is_one_line_and_exit_125(flag, value):
    proc = cli("run", flag, value, "busybox", "--", "true")
    assert proc.returncode == 125, proc
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert flag.lstrip("-") in lines[0]
    assert proc.stdout == ""


def test_cli_memory_kill_says_so_and_exits_137():
    proc = cli("run", "--memory", "32m", "busybox", "--", "sh", "-c", MEMORY_HOG)
    assert proc.returncode == 137, proc
    assert re.search(r"^sandbox: killed: memory limit 32 MiB exceeded \(peak [^)]+\)$",
                     proc.stderr, re.M), proc.stderr


def test_cli_timeout_kill_says_so_and_exits_137():
    proc = cli("run", "--timeout", "1s", "busybox", "--", "sleep", "60")
    assert proc.returncode == 137, proc
    assert re.search(r"^sandbox: killed: wall time limit .+ exceeded$", proc.stderr, re.M), proc.stderr


def test_cli_stats_prints_a_summary_line():
    proc = cli("run", "--stats", "busybox", "--", "sh", "-c", "echo hi")
    assert proc.returncode == 0, proc
    assert proc.stdout == "hi\n"
    lines = [line for line in proc.stderr.splitlines() if line.startswith("sandbox: ")]
    assert len(lines) == 1, proc.stderr
    assert re.match(r"sandbox: exit 0 in \d+ms, peak memory .+, cpu \d+ms", lines[0]), lines[0]


def test_cli_help_shows_the_limits_and_their_defaults():
    proc = cli("run", "--help")
    assert proc.returncode == 0
    for flag in ("--memory", "--cpus", "--cpuset", "--pids", "--timeout", "--output-limit",
                 "--disk", "--ulimit", "--stats"):
        assert flag in proc.stdout, flag
    assert "default 1g" in proc.stdout and "default 4096" in proc.stdout


# -- devices ------------------------------------------------------------------

def _host_block_device() -> tuple[int, int]:
    """major:minor of a block device that exists on this host (not a made-up one)."""
    for name in sorted(os.listdir("/sys/block")):
        if name.startswith(("loop", "ram", "zram")):
            continue
        with open(f"/sys/block/{name}/dev") as f:
            major, minor = f.read().split(":")
        return int(major), int(minor)
    pytest.skip("no disk in /sys/block")


def test_a_host_disk_made_with_mknod_cannot_be_opened_but_dev_null_works():
    major, minor = _host_block_device()
    # /dev is a tmpfs without nodev, so only the devices cgroup stands in the way
    script = (f"mknod /dev/hostdisk b {major} {minor} && head -c1 /dev/hostdisk; echo rc=$?; "
              "mknod /tmp/sda b 8 0 && head -c1 /tmp/sda; echo rc=$?; "
              "echo x > /dev/null && echo null-ok; head -c 3 /dev/zero | wc -c")
    result = run(busybox(script))
    out = result.stdout.decode().split()
    assert out[0] == "rc=1" and out[1] == "rc=1", result.stdout
    assert out[2:] == ["null-ok", "3"], result.stdout
    assert b"/dev/hostdisk: Operation not permitted" in result.stderr, result.stderr


# -- accounting ---------------------------------------------------------------

def test_peak_memory_cpu_time_and_process_count_are_reported():
    result = run(busybox("i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; true | true"))
    assert result.exit_code == 0
    assert result.peak_memory is not None and result.peak_memory > 0
    assert result.cpu_time is not None and result.cpu_time > 0
    assert result.cpu_user is not None and result.cpu_system is not None
    assert result.pids_peak is not None and result.pids_peak >= 2
    assert (result.timed_out, result.oom_killed, result.output_truncated) == (False, False, False)
    assert result.cause == "exited"
