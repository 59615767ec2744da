"""Report directories (pytest_sandbox.channel): where they go and who removes them. No root."""

import os
import subprocess
import sys

from pytest_sandbox.channel import PREFIX, ReportChannel, sweep


def test_a_channel_is_named_after_its_maker_and_removed_on_close():
    channel = ReportChannel()
    try:
        assert os.path.basename(channel.dir).startswith(f"{PREFIX}{os.getpid()}-")
        assert os.stat(channel.dir).st_mode & 0o777 == 0o777  # a sandbox's user may not be root
    finally:
        channel.close()
    assert not os.path.exists(channel.dir)


def test_sweep_removes_only_the_directories_of_processes_that_are_gone(tmp_path):
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    dead = tmp_path / f"{PREFIX}{gone.stdout.strip()}-abc"
    mine = tmp_path / f"{PREFIX}{os.getpid()}-def"
    other = tmp_path / "pytest-sandbox-not-a-pid"
    for path in (dead, mine, other):
        path.mkdir()
    (dead / "reports.jsonl").write_text("{}\n")
    assert sweep(str(tmp_path)) == [dead.name]
    assert not dead.exists() and mine.exists() and other.exists()
