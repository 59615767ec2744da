"""How a container's first process is forked: by the caller, or by its zygote."""

import os
import subprocess
import sys

import pytest

from sandbox import HostError, SandboxSpec, run
from sandbox.process.launch_zygote import PACKAGE_DIR, ZYGOTE_BOOT

from .helpers import REPO

COUNT_ZYGOTES = """
from sandbox import SandboxSpec, run
from sandbox.process.launch_zygote import ZygoteClient
spec = SandboxSpec(image="busybox", command=["true"])
seen = []
for _ in range(3):
    assert run(spec).exit_code == 0
    seen.append(ZygoteClient._instance is not None)
print(seen)
"""


@pytest.mark.root
@pytest.mark.parametrize("mode, expected", [
    ("auto", "[False, True, True]"),  # the first container forked here, the rest by the zygote
    ("direct", "[False, False, False]"),
    ("zygote", "[True, True, True]"),
])
def test_spawn_modes_choose_who_forks(mode, expected):
    env = dict(os.environ, PYTHONPATH=REPO, SANDBOX_SPAWN=mode)
    out = subprocess.run([sys.executable, "-c", COUNT_ZYGOTES], env=env, capture_output=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr.decode()
    assert out.stdout.decode().strip() == expected


@pytest.mark.root
def test_an_unknown_spawn_mode_is_one_clear_error(monkeypatch):
    monkeypatch.setenv("SANDBOX_SPAWN", "sometimes")
    with pytest.raises(HostError, match="SANDBOX_SPAWN='sometimes' is not a spawn mode") as info:
        run(SandboxSpec(image="busybox", command=["true"]))
    assert "auto, direct, zygote" in str(info.value.hint)


def test_the_zygote_loads_only_the_container_side_of_the_engine():
    """Every container is a copy of the zygote: it must not carry the whole engine or pyroute2."""
    boot = ZYGOTE_BOOT.replace("main(int(fd))", "print(' '.join(sorted(sys.modules)))")
    out = subprocess.run([sys.executable, "-S", "-c", boot, "3", PACKAGE_DIR,
                          os.pathsep.join(p for p in sys.path if p)],
                         capture_output=True, text=True, check=True, timeout=60)
    modules = set(out.stdout.split())
    assert {"sandbox.process.init", "sandbox.process.spare", "sandbox.plan"} <= modules
    heavy = ("pyroute2", "sandbox.runtime", "sandbox.network", "sandbox.images", "sandbox.state",
             "sandbox.process.launcher", "sandbox.process.launch_zygote", "site", "dataclasses", "typing", "subprocess", "threading",
             "pathlib", "secrets")
    assert not {m for m in modules if m.startswith(heavy)}
