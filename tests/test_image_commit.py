"""`sandbox commit` of live sandboxes, and the host image's throwaway writable layer."""

import os
import sys
import zipfile

import pytest

from sandbox import Mount, Sandbox, SandboxSpec, images, run

from .helpers import sandbox_cli, wait_for
from .image_helpers import store_is_consistent

pytestmark = pytest.mark.root


def _live(image, script, **spec):
    sandbox = Sandbox(SandboxSpec(image=image, command=["sh", "-c", script + "; echo ready; sleep 60"],
                                  **spec))
    sandbox.__enter__()
    wait_for(lambda: b"ready" in sandbox.stdout)
    return sandbox


def test_commit_makes_an_image_of_a_live_sandboxs_changes():
    sandbox = _live("busybox", "echo made > /etc/made; rm /etc/hosts; mkdir -p /srv/d; echo f > /srv/d/f",
                    name="to-commit")
    try:
        out = sandbox_cli("commit", "-m", "by hand", "to-commit", "committed:1")
        assert out.returncode == 0, out.stderr
        assert run(SandboxSpec(image="busybox", command=["true"])).exit_code == 0
    finally:
        sandbox.kill()
        sandbox.wait()
        sandbox.destroy()
    try:
        r = run(SandboxSpec(image="committed:1", command=["sh", "-c", "cat /etc/made /srv/d/f; ls /etc"]))
        assert r.stdout.startswith(b"made\nf\n") and b"hosts" not in r.stdout
        image = images.lookup("committed:1")
        assert image.layers[:-1] == images.lookup("busybox").layers
        assert image.config.history[-1]["comment"] == "by hand"
    finally:
        images.remove_image("committed:1")
    assert store_is_consistent() == []


def test_commit_of_a_host_sandbox_keeps_its_writes_over_the_host_view():
    sandbox = _live("host", "echo hi > /usr/local/sbx-commit-probe; echo x > /etc/sbx-commit-probe")
    try:
        out = sandbox_cli("commit", sandbox.id, "onhost:1")
        assert out.returncode == 0, out.stderr
    finally:
        sandbox.kill()
        sandbox.wait()
        sandbox.destroy()
    try:
        assert images.lookup("onhost:1").base == "host"
        r = run(SandboxSpec(image="onhost:1", command=["sh", "-c", "cat /usr/local/sbx-commit-probe "
                                                       "/etc/sbx-commit-probe; python3 -c 'print(1)'"]))
        assert r.stdout == b"hi\nx\n1\n", r.stderr
        assert not os.path.exists("/usr/local/sbx-commit-probe")
    finally:
        images.remove_image("onhost:1")


def test_commit_refuses_a_sandbox_that_is_not_running():
    out = sandbox_cli("commit", "no-such-sandbox", "x:1")
    assert out.returncode == 125 and b"no such sandbox" in out.stderr


def _wheel(tmp_path):
    """A one-module wheel, made by hand (pip installs it offline)."""
    path = tmp_path / "sbxprobe-1.0-py3-none-any.whl"
    info = "sbxprobe-1.0.dist-info"
    files = {"sbxprobe.py": "VALUE = 42\n",
             f"{info}/METADATA": "Metadata-Version: 2.1\nName: sbxprobe\nVersion: 1.0\n",
             f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"}
    files[f"{info}/RECORD"] = "".join(f"{name},,\n" for name in [*files, f"{info}/RECORD"])
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return path


def test_pip_install_into_the_host_images_python_works_and_leaves_the_host_untouched(tmp_path):
    wheel = _wheel(tmp_path)
    script = (f"{sys.executable} -m pip install -q --no-index --no-deps --disable-pip-version-check "
              f"/whl/{wheel.name} && {sys.executable} -c 'import sbxprobe; print(sbxprobe.VALUE)'")
    r = run(SandboxSpec(image="host", command=["sh", "-c", script], mounts=[Mount(str(tmp_path), "/whl")],
                        env={"HOME": "/root"}))
    assert r.exit_code == 0, r.stderr
    assert r.stdout.strip().endswith(b"42")
    import importlib.util

    assert importlib.util.find_spec("sbxprobe") is None  # nothing reached the host's Python
    r = run(SandboxSpec(image="host", command=[sys.executable, "-c", "import sbxprobe"]))
    assert r.exit_code != 0  # nor the next sandbox
