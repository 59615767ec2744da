"""The VM lane's list (scripts/vm/lane) names tests that exist: a renamed test or a changed
parameter id fails here, in the main suite, instead of as "not found" inside the VM."""
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def lane_entries():
    with open(os.path.join(REPO, "scripts", "vm", "lane")) as f:
        lines = (line.split("#", 1)[0].strip() for line in f)
        return [line for line in lines if line]


def test_every_entry_of_the_vm_lane_collects():
    entries = lane_entries()
    assert entries, "scripts/vm/lane lists no tests"
    done = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
                           *entries], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    collected = [line for line in done.stdout.splitlines() if "::" in line]
    for entry in entries:
        assert any(line == entry or line.startswith((entry + "::", entry + "["))
                   for line in collected), f"{entry} collects no test"
