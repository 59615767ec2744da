"""The ways to deploy: compose.yaml, the Containerfile, the systemd units in deploy/.

No Docker engine runs here: tests/test_compose.py runs compose.yaml with podman. These check
compose.yaml against the compose specification's JSON schema (check-jsonschema's
vendored copy) and against what this repository runs (every service's command
parses as the CLI's; the volumes and mounts a worker needs); the systemd units
with `systemd-analyze verify`. No root needed.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import pytest
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COMPOSE = os.path.join(ROOT, "compose.yaml")
UNITS = ("sandbox-worker.service", "sandbox-daemon.service")


@pytest.fixture(scope="module")
def compose() -> dict:
    with open(COMPOSE) as f:
        return yaml.safe_load(f)


def check_jsonschema() -> str:
    """The check-jsonschema command (the test extra), next to this Python or on PATH."""
    beside = os.path.join(os.path.dirname(sys.executable), "check-jsonschema")
    tool = beside if os.path.exists(beside) else shutil.which("check-jsonschema")
    if tool is None:
        pytest.skip("check-jsonschema is not installed (pip install -e '.[test]')")
    return tool


def test_compose_yaml_follows_the_compose_specification():
    proc = subprocess.run([check_jsonschema(), "--builtin-schema", "vendor.compose-spec", COMPOSE],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "validation done" in proc.stdout


def test_the_schema_check_catches_a_mistake(tmp_path):
    """The same check refuses a compose file with a misspelt key: it is not a rubber stamp."""
    bad = tmp_path / "compose.yaml"
    with open(COMPOSE) as f:
        bad.write_text(f.read().replace("privileged: true", "priviledged: true"))
    proc = subprocess.run([check_jsonschema(), "--builtin-schema", "vendor.compose-spec", str(bad)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and "priviledged" in proc.stdout + proc.stderr


def test_compose_runs_redis_with_its_log_on_a_volume_and_a_healthcheck(compose):
    redis = compose["services"]["redis"]
    command = redis["command"]
    assert command[command.index("--appendonly") + 1] == "yes"
    assert any(v.endswith(":/data") and v.split(":")[0] in compose["volumes"] for v in redis["volumes"])
    assert "redis-cli ping" in " ".join(redis["healthcheck"]["test"])


def test_compose_workers_scale_and_have_what_sandboxes_need(compose):
    worker = compose["services"]["worker"]
    assert worker["privileged"] is True and worker["deploy"]["replicas"] >= 1
    assert "/run/sandbox" in worker["tmpfs"]
    assert any(v.split(":")[-1] == "/var/lib/sandbox" for v in worker["volumes"])
    assert worker["depends_on"]["redis"]["condition"] == "service_healthy"
    assert "redis:6379" in worker["environment"]["SANDBOX_REDIS_URL"]
    daemon = compose["services"]["daemon"]
    assert daemon["privileged"] is True and "/run/sandbox" in daemon["tmpfs"]
    assert any(v.split(":")[-1] == "/var/lib/sandbox" for v in daemon["volumes"])  # its tokens


@pytest.mark.parametrize("service", ["daemon", "worker"])
def test_each_service_command_is_one_the_cli_accepts(compose, service):
    from sandbox.cli import build_parser

    command = compose["services"][service]["command"]
    assert command[0] == "sandbox"
    args = build_parser(command[1]).parse_args(command[1:])
    assert args.verb == service
    if service == "daemon":
        assert args.listen.startswith("tcp://")


def test_nothing_is_pulled_from_a_registry(compose):
    """Every service runs the image Containerfile builds; its base, from a local Debian layer."""
    for name, service in compose["services"].items():
        assert service["image"] == "${SANDBOX_IMAGE:-localhost/sandbox:latest}", name
        assert service["pull_policy"] == "never" and service["build"]["dockerfile"] == "Containerfile"
    with open(os.path.join(ROOT, "Containerfile")) as f:
        containerfile = f.read()
    with open(os.path.join(ROOT, "deploy", "Containerfile.base")) as f:
        base = f.read()
    assert re.findall(r"^FROM (.+)$", containerfile, re.M) == ["${BASE}"]
    assert "ARG BASE=localhost/sandbox-base:bookworm" in containerfile
    assert re.findall(r"^FROM (.+)$", base, re.M) == ["${DEBIAN}"]
    assert "ARG DEBIAN=localhost/debian:bookworm" in base and "scripts/setup.sh --runtime" in base
    with open(os.path.join(ROOT, "deploy", "build-base.sh")) as f:
        script = f.read()
    assert "sandbox image bootstrap" in script and "localhost/debian:bookworm" in script


def test_the_image_scripts_parse():
    with open(os.path.join(ROOT, "Containerfile")) as f:
        entry = re.search(r'^ENTRYPOINT \["([^"]+)"\]', f.read(), re.M).group(1)
    local = os.path.join(ROOT, os.path.relpath(entry, "/opt/sandbox"))
    assert os.access(local, os.X_OK)
    for shell, script in (("sh", local), ("bash", os.path.join(ROOT, "scripts", "setup.sh")),
                          ("bash", os.path.join(ROOT, "deploy", "build-base.sh"))):
        assert subprocess.run([shell, "-n", script]).returncode == 0, script


@pytest.mark.parametrize("unit", UNITS)
def test_the_systemd_units_verify(unit, tmp_path):
    """`systemd-analyze verify` finds nothing to say (an unknown setting is only a warning there)."""
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed (apt-get install systemd)")
    with open(os.path.join(ROOT, "deploy", unit)) as f:
        text = f.read()
    here = shutil.which("sandbox") or f"{sys.executable} -m sandbox"  # this host's, as installed
    (tmp_path / unit).write_text(text.replace("/usr/local/bin/sandbox", here))
    proc = subprocess.run(["systemd-analyze", "verify", str(tmp_path / unit)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout + proc.stderr == "", proc.stdout + proc.stderr


@pytest.mark.parametrize("unit", UNITS)
def test_the_units_restart_and_stop_as_readme_says(unit):
    with open(os.path.join(ROOT, "deploy", unit)) as f:
        settings = dict(line.split("=", 1) for line in f.read().splitlines()
                        if "=" in line and not line.startswith("#"))
    assert settings["KillMode"] == "mixed"
    assert settings["Restart"] == ("always" if "worker" in unit else "on-failure")
    assert settings["RestartPreventExitStatus"] == "125"
    assert settings["ExecStart"].startswith("/usr/local/bin/sandbox ")
