"""linux.fork_sibling: a fork whose child is the caller's parent's child. No root needed."""

import os
import subprocess
import sys

import pytest

from sandbox import linux

from .helpers import REPO

pytestmark = pytest.mark.skipif(not linux.CAN_FORK_SIBLING,
                                reason=f"fork_sibling is not wired up for {os.uname().machine}")

HELPER = """
import json, os, threading
from sandbox import linux

pid = linux.fork_sibling()
if pid == 0:  # Python works in the child: imports, threads' bookkeeping, the GIL
    threading.Thread(target=lambda: None).start()
    os._exit(len(json.dumps([1, 2, 3])))
print(pid, os.getpid())
"""


def test_the_child_of_fork_sibling_is_our_child_with_its_real_status():
    helper = subprocess.run([sys.executable, "-c", HELPER], capture_output=True, text=True,
                            check=True, timeout=60, env=dict(os.environ, PYTHONPATH=REPO))
    sibling, helper_pid = map(int, helper.stdout.split())
    assert sibling != helper_pid
    _, status = os.waitpid(sibling, 0)  # the helper's sibling, so ours to reap
    assert os.waitstatus_to_exitcode(status) == 9
