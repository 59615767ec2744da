"""The store under several processes at once, a killed import, and rmi of an image in use."""

import os
import signal
import subprocess
import sys
import tarfile

import pytest

from sandbox import Sandbox, SandboxSpec, images
from sandbox.images import layout

from .helpers import REPO, sandbox_cli, wait_for
from .image_helpers import image_on_busybox, store_is_consistent, tar_layer

pytestmark = pytest.mark.root

WORKER = """
import sys
from sandbox import images, run, SandboxSpec
me, tarball, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
for j in range(rounds):
    tag = f"conc-{me}:{j}"
    images.import_image(tarball, tag)
    r = run(SandboxSpec(image=tag, command=["cat", "/shared", "/own"]))
    assert r.exit_code == 0 and r.stdout.startswith(b"shared\\n"), (r.exit_code, r.stderr)
    images.remove_image(tag)
print("ok", me)
"""
PRUNER = """
import sys
from sandbox import images
for _ in range(int(sys.argv[1])):
    images.prune()
print("ok pruner")
"""


def _tarball(tmp_path, name, own):
    busybox = images.get("busybox").layers[0]
    path = tmp_path / f"{name}.tar"
    with tarfile.open(path, "w") as tar:
        tar.add(busybox, arcname=".")
        for member, data in (("shared", "shared\n"), ("own", own)):
            (tmp_path / member).write_text(data)
            tar.add(tmp_path / member, arcname=member)
    return path


def _python(*args):
    env = dict(os.environ, PYTHONPATH=REPO)
    return subprocess.Popen([sys.executable, "-c", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env)


def test_concurrent_imports_runs_removals_and_prunes_leave_a_consistent_store(tmp_path):
    same = _tarball(tmp_path, "same", "same\n")  # two workers import identical content
    other = _tarball(tmp_path, "other", "other\n")
    procs = [_python(WORKER, "a", str(same), "3"), _python(WORKER, "b", str(same), "3"),
             _python(WORKER, "c", str(other), "3"), _python(PRUNER, "8")]
    outputs = [p.communicate(timeout=300) for p in procs]
    for proc, (out, err) in zip(procs, outputs):
        assert proc.returncode == 0, err.decode()[-2000:]
        assert out.startswith(b"ok")
    assert not [t for i in images.list_images() for t in i.tags if t.startswith("conc-")]
    assert store_is_consistent() == []
    images.prune()
    assert len(os.listdir(layout.root() / "layers")) == len(
        {layer.diff_id for i in images.list_images() for layer in i.layers})


def test_a_killed_import_leaves_only_what_gc_removes(tmp_path):
    """Killed mid-import: the archive comes on stdin, and only its first half before the kill
    (an import of a whole file could end before any kill on a fast machine)."""
    big = tmp_path / "big.tar"
    with tarfile.open(big, "w") as tar:
        for i in range(40):
            (tmp_path / "blob").write_bytes(os.urandom(256 << 10))
            tar.add(tmp_path / "blob", arcname=f"data/{i}")
    data = big.read_bytes()
    layout.ensure()
    blobs_before = set(os.listdir(layout.root() / "blobs" / "sha256"))
    env = dict(os.environ, PYTHONPATH=REPO)
    proc = subprocess.Popen([sys.executable, "-m", "sandbox", "image", "import", "-", "killed:1"],
                            env=env, stdin=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdin is not None
    proc.stdin.write(data[:len(data) // 2])
    proc.stdin.flush()
    wait_for(lambda: os.listdir(layout.root() / "tmp"), timeout=60, interval=0.005)
    proc.send_signal(signal.SIGKILL)  # it waits for the rest of the archive
    proc.wait()
    proc.stdin.close()
    assert os.listdir(layout.root() / "tmp")  # its work dir is left...
    out = sandbox_cli("gc")
    assert out.returncode == 0, out.stderr
    assert os.listdir(layout.root() / "tmp") == []  # ...and gc removes it
    assert "killed:1" not in {t for i in images.list_images() for t in i.tags}
    assert set(os.listdir(layout.root() / "blobs" / "sha256")) <= blobs_before | _referenced_blobs()
    assert store_is_consistent() == []


def _referenced_blobs():
    found = set()
    for image in images.list_images():
        found |= {image.id[7:], image.manifest.config.digest[7:]} | {layer.digest[7:] for layer in image.layers}
    return found


def test_rmi_is_refused_while_a_sandbox_runs_the_image_unless_forced():
    image = image_on_busybox("inuse:1", tar_layer(("marker", "in use\n")))
    layer = image.layers[-1]
    spec = SandboxSpec(image="inuse:1", command=["sh", "-c", "echo up; sleep 60"])
    with Sandbox(spec) as sandbox:
        wait_for(lambda: b"up" in sandbox.stdout)
        out = sandbox_cli("rmi", "inuse:1")
        assert out.returncode == 125 and out.stderr.count(b"\n") == 1
        assert f"in use by sandbox {sandbox.id}".encode() in out.stderr
        assert "inuse:1" in images.lookup("inuse:1").tags
        out = sandbox_cli("rmi", "-f", "inuse:1")
        assert out.returncode == 0, out.stderr
        sandbox_cli("image", "prune")
        assert os.path.isdir(layer.path)  # the running sandbox still mounts it
        sandbox.kill()
        sandbox.wait()
    images.prune()
    assert not os.path.exists(layer.path)
    assert store_is_consistent() == []
