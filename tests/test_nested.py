"""sandbox.fork_nested: a copy of a process in namespaces of its own, made without privilege
(as a batch's pytest makes one per test inside a job's sandbox)."""

import os
import subprocess
import sys

import pytest

from .helpers import REPO

pytestmark = pytest.mark.root  # to become nobody first: the copy is made without privilege

HELPER = """
import encodings.idna, os, socket  # imported while root: nobody cannot read /root/.pyenv
from sandbox import fork_nested, linux

os.setgroups([])
os.setgid(65534)
os.setuid(65534)
# a process that changed its uid is not dumpable (its /proc files stay root's); a sandbox's
# processes were exec'd as their user, and are
linux.set_dumpable(True)
pid = fork_nested()
if pid == 0:
    with open("/proc/self/net/dev") as f:
        links = sorted(line.split(":")[0].strip() for line in f.readlines()[2:])
    wrong = []
    if os.getpid() != 1:
        wrong.append(f"pid {os.getpid()}")
    if os.listdir("/tmp") or os.listdir("/dev/shm"):
        wrong.append("a /tmp or /dev/shm that is not its own")
    if links != ["lo"]:
        wrong.append(f"links {links}")
    server = socket.create_server(("127.0.0.1", 0))  # lo is up: it carries a connection
    socket.create_connection(server.getsockname(), timeout=5).close()
    if os.getuid() != 65534:
        wrong.append(f"uid {os.getuid()}")
    open("/tmp/left", "w").close()
    os.write(1, ("; ".join(wrong) or "ok").encode())
    os._exit(0)
_, status = os.waitpid(pid, 0)
print(f" exit {os.waitstatus_to_exitcode(status)}; /tmp/left seen here: {os.path.exists('/tmp/left')}")
"""


def test_a_nested_copy_is_pid_1_with_its_own_tmp_and_only_lo(tmp_path):
    helper = subprocess.run([sys.executable, "-c", HELPER], capture_output=True, text=True,
                            timeout=60, env=dict(os.environ, PYTHONPATH=REPO), cwd=tmp_path)
    assert helper.stdout == "ok exit 0; /tmp/left seen here: False\n", helper.stderr


CONFINED = """
import ctypes, errno, os
from sandbox import fork_nested, linux
from sandbox.nested import NESTED

libc = ctypes.CDLL(None, use_errno=True)


def refused(call, *args):
    return call(*args) == -1 and ctypes.get_errno() == errno.EPERM


def nested_clone():  # clone(2) with fork_nested's namespaces: True if made
    pid = libc.syscall(56, NESTED | 17, 0, 0, 0, 0)
    if pid == 0:
        os._exit(0)
    if pid > 0:
        os.waitpid(pid, 0)
    return pid > 0


def filters():
    with open("/proc/self/status") as f:
        return next(line.split()[1] for line in f if line.startswith("Seccomp_filters:"))


said = []
# the nested profile opens clone with exactly fork_nested's namespaces, nothing more
said.append(f"unshare {refused(libc.unshare, 0x10000000)}")
said.append(f"clone+cgroupns {refused(libc.syscall, 56, 0x10000000 | 0x02000000 | 17, 0, 0, 0, 0)}")
for stack in (None, "default"):
    pid = fork_nested(stack)
    if pid == 0:
        line = [f"{stack}: filters {filters()}",
                f"unshare refused {refused(libc.unshare, 0x10000000)}",
                f"clone made {nested_clone()}",
                f"mount refused {refused(libc.mount, b'none', b'/tmp', b'tmpfs', 6, None)}"]
        os.write(1, (" ".join(line) + "\\n").encode())
        os._exit(0)
    os.waitpid(pid, 0)
print(" ".join(said))
"""


def test_under_the_nested_profile_a_copy_stacks_the_default(tmp_path):
    """A sandbox under the nested profile may make fork_nested's namespaces (and no
    others); a copy made with seccomp="default" is under both filters, and so cannot
    make a user namespace or mount, as a sandbox under the default cannot."""
    from sandbox import SandboxSpec, run

    result = run(SandboxSpec(image="host", command=["python3", "-c", CONFINED], seccomp="nested",
                             env={"PYTHONPATH": REPO}), log_file=False)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.decode().splitlines() == [
        # the copy is root in its own user namespace: under the nested profile alone it may
        # make nested namespaces again and mount with fork_nested's flags; never unshare
        "None: filters 1 unshare refused True clone made True mount refused False",
        "default: filters 2 unshare refused True clone made False mount refused True",
        "unshare True clone+cgroupns True",
    ], result.stderr


OWN_ROOT = """
import os, sys
from sandbox import NESTED_ROOT_ENV, fork_nested

os.makedirs("/workspace/kept", exist_ok=True)
for attempt in ("first", "second"):
    pid = fork_nested("default", own_root=True, keep=("/workspace/kept",))
    if pid == 0:
        seen = [p for p in ("/etc/left", "/root/left", "/workspace/left", "/tmp/left", "/odd,1:x/left")
                if os.path.exists(p)]
        os.write(1, f"{attempt}: {os.environ[NESTED_ROOT_ENV]} saw {seen} "
                    f"hostname {os.path.exists('/etc/hostname')} in {os.getcwd()}\\n".encode())
        for path in ("/etc/left", "/root/left", "/workspace/left", "/tmp/left", "/odd,1:x/left",
                     "/workspace/kept/report"):
            with open(path, "a") as f:
                f.write(attempt)
        if os.path.exists("/etc/hostname"):
            os.remove("/etc/hostname")  # a lower layer's file: whited out in its upper dir
        os.mkdir("/usr/local/made-here")
        os._exit(0)
    os.waitpid(pid, 0)
left = [p for p in ("/etc/left", "/root/left", "/workspace/left", "/tmp/left", "/odd,1:x/left",
                    "/usr/local/made-here") if os.path.exists(p)]
print("here:", left, open("/workspace/kept/report").read(), os.path.exists("/etc/hostname"))
"""


@pytest.mark.parametrize(("root_view", "userns"), [(True, "host"), (False, "host"), (True, "auto")])
def test_a_nested_copy_gets_a_root_of_its_own_where_the_sandbox_has_a_view(tmp_path, root_view,
                                                                           userns):
    """With the sandbox's view of its root, each copy writes to overlays of its own (the root,
    the image's other overlays, the workspace) that go with it; what it was asked to keep
    is bound through. Without the view it says it shares the sandbox's root. Under the
    nested profile, the copy then stacking the default; in a sandbox with a user namespace
    of its own too."""
    from sandbox import Mount, SandboxSpec, run

    workspace, odd = tmp_path / "workspace", tmp_path / "odd"
    workspace.mkdir()
    odd.mkdir()  # mounted where overlayfs's options need escapes
    result = run(SandboxSpec(image="host", command=["python3", "-c", OWN_ROOT], seccomp="nested",
                             env={"PYTHONPATH": REPO}, root_view=root_view, userns=userns,
                             workdir="/workspace",
                             mounts=(Mount(str(workspace), "/workspace", read_only=False),
                                     Mount(str(odd), "/odd,1:x", read_only=False))),
                 log_file=False)
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.decode().splitlines()
    if root_view:
        # in the same working directory as its caller, in the new root
        assert lines == ["first: own saw [] hostname True in /workspace",
                         "second: own saw [] hostname True in /workspace",
                         "here: [] firstsecond True"], result.stderr
        assert sorted(os.listdir(workspace)) == ["kept"] and not os.listdir(odd)
    else:
        assert lines[0] == "first: shared: the sandbox has no view of its root at /run/sandbox/root " \
                           "saw [] hostname True in /workspace", result.stderr
        assert lines[1].startswith("second: shared: ") and "/etc/left" in lines[1]
