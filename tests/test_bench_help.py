"""Every benchmark answers --help with its usage and leaves nothing behind (no root needed).

Several make their scratch directory when they are imported, before the
arguments are read: a --help or a usage error must remove it again. And a
helper that takes a path must not take --help for one (bench/daemon_floor.py
once served on a socket named "--help"). ``bench/scratch.py`` does the removing.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"
SCRIPTS = sorted(path.name for path in BENCH.glob("*.py") if '__name__ == "__main__"' in path.read_text())


def test_the_benchmarks_are_found():
    assert {"startup.py", "ab.py", "daemon_floor.py", "pytest_overhead.py"} <= set(SCRIPTS)


@pytest.mark.parametrize("script", SCRIPTS)
@pytest.mark.parametrize("args, status", [(["--help"], 0), (["--no-such-option"], 2)],
                         ids=["help", "usage-error"])
def test_a_benchmark_says_its_usage_and_leaves_nothing(script, args, status, tmp_path):
    proc = _run_leaving_nothing(tmp_path, script, *args)
    assert proc.returncode == status, proc.stderr[-2000:]
    shown = proc.stdout if status == 0 else proc.stderr
    assert shown.startswith("usage: "), shown[:500]


def test_a_value_refused_after_the_arguments_were_read_leaves_nothing_either(tmp_path):
    proc = _run_leaving_nothing(tmp_path, "network.py", "-n", "0")
    assert proc.returncode == 2
    assert "network.py: error: -n must be at least 1" in proc.stderr


def _run_leaving_nothing(tmp_path: Path, script: str, *args: str) -> subprocess.CompletedProcess:
    """Run a benchmark with TMPDIR and the current directory empty; check they stay so."""
    scratch, cwd = tmp_path / "tmp", tmp_path / "cwd"
    scratch.mkdir()
    cwd.mkdir()
    proc = subprocess.run([sys.executable, str(BENCH / script), *args], cwd=cwd, capture_output=True,
                          text=True, timeout=60, env={**os.environ, "TMPDIR": str(scratch)})
    assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert list(scratch.iterdir()) == [] and list(cwd.iterdir()) == []
    return proc
