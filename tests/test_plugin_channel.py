"""Report directories (pytest_sandbox.channel): where they go and who removes them. No root."""

import os
import subprocess
import sys

from pytest_sandbox.channel import PREFIX, ReportChannel, maker_prefix, sweep


def test_a_channel_is_named_after_its_maker_and_removed_on_close():
    channel = ReportChannel()
    try:
        pidns = os.stat("/proc/self/ns/pid").st_ino
        assert os.path.basename(channel.dir).startswith(f"{PREFIX}{pidns}-{os.getpid()}-")
        assert maker_prefix() == f"{PREFIX}{pidns}-{os.getpid()}-"
        assert os.stat(channel.dir).st_mode & 0o777 == 0o777  # a sandbox's user may not be root
    finally:
        channel.close()
    assert not os.path.exists(channel.dir)


def test_sweep_removes_only_the_directories_of_processes_that_are_gone(tmp_path):
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    pidns = os.stat("/proc/self/ns/pid").st_ino
    dead = tmp_path / f"{PREFIX}{pidns}-{gone.stdout.strip()}-abc"
    mine = tmp_path / f"{maker_prefix()}def"
    elsewhere = tmp_path / f"{PREFIX}{pidns + 1}-{gone.stdout.strip()}-ghi"  # another pid namespace
    other = tmp_path / "pytest-sandbox-not-a-pid"
    for path in (dead, mine, elsewhere, other):
        path.mkdir()
    (dead / "reports.jsonl").write_text("{}\n")
    assert sweep(str(tmp_path)) == [dead.name]
    assert not dead.exists() and mine.exists() and elsewhere.exists() and other.exists()
