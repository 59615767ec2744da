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
