"""Seccomp: Docker's profile format read and resolved, compiled once, loaded last on every route.

The first tests need no root: a profile resolved for capabilities, an
architecture and a kernel as Docker's daemon resolves it, bad profiles
refused in one line, the program cached. The others run sandboxes: moby's
default.json given as a file works unmodified, a profile of one's own
decides (its errno, its kill), capabilities open what the profile says,
and Python targets are filtered on every route.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import time
from dataclasses import replace

import pytest

from sandbox import Sandbox, SandboxSpec, SpecError, run
from sandbox.linux import libseccomp
from sandbox.linux.caps import mask
from sandbox.security import filters, profile
from sandbox.spec import DEFAULT_CAPABILITIES

from .helpers import sandbox_cli

pytest_plugins = ["pytester"]
DOCKER_CAPS = filters.capability_names(mask(DEFAULT_CAPABILITIES))
ENOSYS = 38


def rules_for(name: str, resolved: profile.Resolved) -> list[profile.Rule]:
    return [rule for rule in resolved.rules if name in rule.names]


def test_docker_s_default_profile_resolved_for_docker_s_capabilities():
    resolved = profile.resolve(profile.load("default"), DOCKER_CAPS, arch="amd64", kernel=(6, 1))
    assert (resolved.default_action, resolved.default_errno) == ("SCMP_ACT_ERRNO", 1)
    assert resolved.arches == ("SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32")
    (clone3,) = rules_for("clone3", resolved)
    assert (clone3.action, clone3.errno) == ("SCMP_ACT_ERRNO", ENOSYS)  # libcs fall back to clone
    (clone,) = rules_for("clone", resolved)  # only without namespace flags
    assert clone.args == (profile.Arg(0, 0x7E020000, 0, "SCMP_CMP_MASKED_EQ"),)
    for name in ("unshare", "setns", "mount", "keyctl", "add_key", "bpf", "perf_event_open",
                 "kexec_load", "open_by_handle_at", "init_module", "userfaultfd"):
        assert not rules_for(name, resolved), name  # left to the default: EPERM
    assert [r.args[0].value for r in rules_for("personality", resolved)] == [0, 8, 0x20000, 0x20008,
                                                                               0xFFFFFFFF]
    assert rules_for("ptrace", resolved) and rules_for("arch_prctl", resolved)


def test_capabilities_architectures_and_kernels_decide_which_rules_apply():
    default = profile.load("default")
    admin = profile.resolve(default, DOCKER_CAPS | {"CAP_SYS_ADMIN"}, arch="amd64", kernel=(6, 1))
    assert rules_for("unshare", admin) and rules_for("mount", admin)
    assert all(rule.action == "SCMP_ACT_ALLOW" for rule in rules_for("clone3", admin))
    arm = profile.resolve(default, DOCKER_CAPS, arch="arm64", kernel=(6, 1))
    assert arm.arches == ("SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM") and not rules_for("arch_prctl", arm)
    old = profile.resolve(default, DOCKER_CAPS, arch="amd64", kernel=(4, 4))
    assert not rules_for("ptrace", old)  # before 4.8, ptrace could bypass seccomp


def test_the_nested_profile_is_the_default_plus_fork_nested_s_clone_mounts_and_pivot():
    default = profile.resolve(profile.load("default"), DOCKER_CAPS, arch="amd64", kernel=(6, 1))
    nested = profile.resolve(profile.load("nested"), DOCKER_CAPS, arch="amd64", kernel=(6, 1))
    assert nested.rules[:len(default.rules)] == default.rules
    assert nested.rules[len(default.rules):] == (
        profile.Rule(("clone",), "SCMP_ACT_ALLOW", None,
                     (profile.Arg(0, 0x7E020000, 0x7C020000, "SCMP_CMP_MASKED_EQ"),)),
        profile.Rule(("mount",), "SCMP_ACT_ALLOW", None, (profile.Arg(3, 0x44000, 0, "SCMP_CMP_EQ"),)),
        profile.Rule(("mount",), "SCMP_ACT_ALLOW", None, (profile.Arg(3, 6, 0, "SCMP_CMP_EQ"),)),
        profile.Rule(("mount",), "SCMP_ACT_ALLOW", None, (profile.Arg(3, 0x5000, 0, "SCMP_CMP_EQ"),)),
        profile.Rule(("pivot_root",), "SCMP_ACT_ALLOW", None, ()),
        profile.Rule(("umount2",), "SCMP_ACT_ALLOW", None, (profile.Arg(1, 2, 0, "SCMP_CMP_EQ"),)))
    assert not rules_for("unshare", nested) and not rules_for("setns", nested)
    s390 = profile.resolve(profile.load("nested"), DOCKER_CAPS, arch="s390x", kernel=(6, 1))
    assert rules_for("clone", s390)[-1].args[0].position == 1  # where s390's clone has its flags
    assert filters.filter_for("nested", mask(DEFAULT_CAPABILITIES)).program != \
        filters.filter_for("default", mask(DEFAULT_CAPABILITIES)).program


def test_the_oci_form_is_what_runc_takes():
    resolved = profile.resolve(profile.load("default"), DOCKER_CAPS, arch="amd64", kernel=(6, 1))
    oci = profile.to_oci(resolved)
    assert oci["defaultAction"] == "SCMP_ACT_ERRNO" and oci["defaultErrnoRet"] == 1
    assert oci["architectures"][0] == "SCMP_ARCH_X86_64"
    clone = next(s for s in oci["syscalls"] if s["names"] == ["clone"])
    assert clone["args"] == [{"index": 0, "value": 0x7E020000, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}]


@pytest.mark.parametrize("data, says", [
    ("not json", "JSON"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "defaultActon": 1}, "at defaultActon"),
    ({"defaultAction": "SCMP_ACT_MAYBE"}, "one of SCMP_ACT_KILL"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/run/agent.sock"}, "seccomp agent"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"]}]}, "syscalls[0].action"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ERRNO",
                                                       "args": [{"index": 9, "value": 1, "op": "SCMP_CMP_EQ"}]}]},
     "syscalls[0].args[0].index"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ERRNO",
                                                       "includes": {"minKernel": "soon"}}]},
     "includes.minKernel"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "architectures": [], "archMap": []}, "not both"),
])
def test_a_bad_profile_is_one_line_naming_the_file_and_the_key(tmp_path, data, says):
    path = tmp_path / "profile.json"
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    with pytest.raises(SpecError) as info:
        SandboxSpec(image="busybox", seccomp=str(path))
    message = str(info.value)
    assert "\n" not in message and str(path) in message and says in message, message


def test_a_program_is_compiled_once_per_profile_and_capability_set(tmp_path):
    first = filters.filter_for("default", mask(DEFAULT_CAPABILITIES))
    assert first is filters.filter_for("default", mask(DEFAULT_CAPABILITIES))
    assert first.program and len(first.program) % 8 == 0 and first.flags == 0
    cached = list(filters.cache_dir().glob("*.bpf"))
    assert any(p.read_bytes() == first.program for p in cached)  # and kept for the next process
    admin = filters.filter_for("default", mask((*DEFAULT_CAPABILITIES, "SYS_ADMIN")))
    assert admin.program != first.program
    assert filters.filter_for("unconfined", 0) is None


def test_the_cache_key_is_what_the_program_depends_on():
    resolved = profile.resolve(profile.load("default"), DOCKER_CAPS, arch="amd64", kernel=(6, 1))
    key = filters.cache_key(resolved, "x86_64", "2.5.4")
    assert key == filters.cache_key(resolved, "x86_64", "2.5.4") and len(key) == 32
    others = {
        filters.cache_key(resolved, "aarch64", "2.5.4"),
        filters.cache_key(resolved, "x86_64", "2.5.5"),  # another libseccomp may emit another program
        filters.cache_key(profile.resolve(profile.load("default"), DOCKER_CAPS | {"CAP_SYS_ADMIN"},
                                          arch="amd64", kernel=(6, 1)), "x86_64", "2.5.4"),
        filters.cache_key(profile.resolve(profile.load("default"), DOCKER_CAPS, arch="amd64",
                                          kernel=(4, 4)), "x86_64", "2.5.4"),
        filters.cache_key(replace(resolved, default_errno=38), "x86_64", "2.5.4"),
        filters.cache_key(replace(resolved, arches=resolved.arches[:1]), "x86_64", "2.5.4"),
        filters.cache_key(replace(resolved, flags=("SECCOMP_FILTER_FLAG_LOG",)), "x86_64", "2.5.4"),
    }
    assert key not in others and len(others) == 7
    # the profile's name is not part of it: a copy of default.json shares its program
    assert filters.cache_key(replace(resolved, source="/etc/copy.json"), "x86_64", "2.5.4") == key


def test_a_profile_file_is_compiled_again_when_it_changes(tmp_path):
    path = tmp_path / "mine.json"
    path.write_text(json.dumps({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]}))
    first = filters.filter_for(str(path), 0)
    assert filters.filter_for(str(path), 0) is first
    path.write_text(json.dumps({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["mkdir", "rmdir"], "action": "SCMP_ACT_ERRNO"}]}))
    second = filters.filter_for(str(path), 0)
    assert second.program != first.program and second.profile == str(path)


def test_a_corrupt_cache_file_is_compiled_again(tmp_path):
    resolved = profile.resolve(profile.load("default"), DOCKER_CAPS)
    key = filters.cache_key(resolved, os.uname().machine, libseccomp.version())
    filters.cache_dir().mkdir(parents=True, exist_ok=True)
    (filters.cache_dir() / f"{key}.bpf").write_bytes(b"torn")  # not whole instructions
    filters._COMPILED.pop(key, None)
    filters._MADE.clear()
    made = filters.filter_for("default", mask(DEFAULT_CAPABILITIES))
    assert made.program == filters.compile_program(resolved)
    assert (filters.cache_dir() / f"{key}.bpf").read_bytes() == made.program


def test_a_condition_twice_on_one_argument_becomes_two_rules(tmp_path):
    """As runc does: libseccomp refuses two conditions on one argument in one rule."""
    path = tmp_path / "profile.json"
    path.write_text(json.dumps({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["personality"], "action": "SCMP_ACT_ERRNO",
         "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"},
                  {"index": 0, "value": 16, "op": "SCMP_CMP_EQ"}]}]}))
    assert filters.filter_for(str(path), 0).program


def test_the_cli_refuses_a_bad_security_opt_in_one_line(tmp_path):
    missing = sandbox_cli("run", "--security-opt", f"seccomp={tmp_path}/none.json", "busybox", "--", "true")
    assert missing.returncode == 125 and missing.stderr.count(b"\n") == 1, missing.stderr
    assert b"none.json" in missing.stderr and b"a readable JSON file" in missing.stderr
    other = sandbox_cli("run", "--security-opt", "apparmor=unconfined", "busybox", "--", "true")
    assert other.returncode == 125 and b"seccomp=PROFILE.json or seccomp=unconfined" in other.stderr
    printed = sandbox_cli("run", "--dry-run", "busybox", "--", "true")
    assert b"load the seccomp filter (default profile" in printed.stdout


# -- in sandboxes ---------------------------------------------------------------------


def sh(script: str, **options):
    return run(SandboxSpec(image="busybox", command=["sh", "-c", script], **options), log_file=False)


@pytest.mark.root
def test_moby_s_default_json_works_unmodified_as_a_file(tmp_path):
    path = tmp_path / "default.json"
    path.write_bytes(open(profile.DEFAULT_PROFILE, "rb").read())
    r = sandbox_cli("run", "--security-opt", f"seccomp={path}", "busybox", "--",
                    "sh", "-c", "grep Seccomp: /proc/self/status; unshare -U true || echo denied")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split(b"\n")[:2] == [b"Seccomp:\t2", b"denied"]


@pytest.mark.root
def test_a_profile_of_one_s_own_decides_its_errno_and_its_kill(tmp_path):
    path = tmp_path / "mine.json"
    path.write_text(json.dumps({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13},
        {"names": ["sync"], "action": "SCMP_ACT_KILL_PROCESS"}]}))
    r = sh("mkdir /tmp/x 2>&1; echo $?", seccomp=str(path))
    assert b"Permission denied" in r.stdout and r.stdout.strip().endswith(b"1")
    killed = sh("sync", seccomp=str(path))
    assert killed.exit_code == 128 + signal.SIGSYS


@pytest.mark.root
def test_capabilities_open_what_the_profile_says_they_open():
    denied = sh("unshare -U true && echo made || echo denied")
    admin = sh("unshare -U true && echo made || echo denied",
               capabilities=(*DEFAULT_CAPABILITIES, "SYS_ADMIN"))
    assert denied.stdout == b"denied\n" and admin.stdout == b"made\n"


PTRACE_ATTACH, PTRACE_DETACH, PTRACE_SECCOMP_GET_FILTER = 16, 17, 0x420C


def installed_filters(pid: int) -> list[bytes]:
    """The seccomp programs of process ``pid``, newest first, as the kernel holds them
    (PTRACE_SECCOMP_GET_FILTER: the process is stopped as a tracee meanwhile)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.ptrace.restype = ctypes.c_long
    libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
    if libc.ptrace(PTRACE_ATTACH, pid, None, None) < 0:
        raise OSError(ctypes.get_errno(), "PTRACE_ATTACH")
    try:
        os.waitpid(pid, 0)  # stopped
        programs = []
        while (count := libc.ptrace(PTRACE_SECCOMP_GET_FILTER, pid, len(programs), None)) > 0:
            buf = ctypes.create_string_buffer(count * 8)
            assert libc.ptrace(PTRACE_SECCOMP_GET_FILTER, pid, len(programs), buf) == count
            programs.append(buf.raw)
        return programs
    finally:
        libc.ptrace(PTRACE_DETACH, pid, None, None)


def child_of(pid: int) -> int:
    """The one child process of ``pid`` (the command its init spawned), once it has one."""
    for _ in range(500):
        for entry in os.listdir("/proc"):
            try:
                with open(f"/proc/{entry}/stat") as f:
                    if entry.isdigit() and int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        return int(entry)
            except (OSError, ValueError):
                continue
        time.sleep(0.01)
    raise AssertionError(f"process {pid} started no command")


@pytest.mark.root
def test_the_installed_filter_is_the_compiled_program_byte_for_byte():
    """The command runs under exactly one filter, the very program compiled for the
    profile (assembled: tests/test_seccomp_assembler.py checks it decides as libseccomp's
    does): nothing added, nothing lost on the way to the container."""
    exported = filters.compile_program(profile.resolve(profile.load("default"), DOCKER_CAPS))
    with Sandbox(SandboxSpec(image="busybox", command=["sleep", "60"]), log_file=False) as box:
        assert box.process is not None
        command = child_of(box.process.pid)
        with open(f"/proc/{command}/status") as f:
            status = f.read()
        programs = installed_filters(command)
        box.kill()
    assert "Seccomp:\t2" in status and "Seccomp_filters:\t1" in status
    assert programs == [exported]


def _unshare_user() -> int:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(0x10000000) == 0:
        return 0
    return ctypes.get_errno()


@pytest.mark.root
def test_a_python_target_is_filtered_on_every_route(spawn_mode):
    from sandbox import Sandbox

    spec = SandboxSpec(image="host", command=["python-target"])
    for _ in range(2):  # the first target is forked by its init; later ones into a held one
        with Sandbox(spec, target=_unshare_user, log_file=False) as box:
            assert box.wait().exit_code == 1  # EPERM
    with Sandbox(spec.with_changes(seccomp="unconfined"), target=_unshare_user, log_file=False) as box:
        assert box.wait().exit_code == 0


@pytest.mark.root
def test_the_marker_takes_the_seccomp_setting(pytester):
    pytester.makepyfile("""
        import ctypes, pytest

        def unshare_user():
            libc = ctypes.CDLL(None, use_errno=True)
            return libc.unshare(0x10000000) == 0

        @pytest.mark.sandbox
        def test_confined():
            assert not unshare_user()

        @pytest.mark.sandbox(seccomp="unconfined")
        def test_unconfined():
            assert unshare_user()
    """)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)


@pytest.mark.root
def test_a_job_file_takes_the_seccomp_setting(tmp_path):
    from jobs import load_job_file, run_job

    job = tmp_path / "job.toml"
    job.write_text('name = "j"\nimage = "busybox"\n[security]\nseccomp = "unconfined"\n'
                   '[[steps]]\nname = "s"\nrun = "unshare -U true"\n')
    (spec,) = load_job_file(job)
    assert spec.seccomp == "unconfined" and run_job(spec).status == "passed"
    job.write_text(job.read_text().replace('"unconfined"', '"/etc/my.json"'))
    with pytest.raises(Exception) as info:
        load_job_file(job)
    assert "security.seccomp" in str(info.value) and '"default" or "unconfined"' in str(info.value)
