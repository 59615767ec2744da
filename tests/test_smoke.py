"""The first thing a user tries: a command in busybox, its output and exit status."""

import pytest

from sandbox import SandboxSpec, run

pytestmark = pytest.mark.root


def test_output_and_exit_status_come_back_separately():
    result = run(SandboxSpec(image="busybox", command=["sh", "-c", "echo out; echo err >&2; exit 3"]))
    assert result.exit_code == 3
    assert result.stdout == b"out\n"
    assert result.stderr == b"err\n"
