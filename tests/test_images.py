"""Images: busybox on first use, host, and imports of directories and tarballs."""

import subprocess
import tarfile

import pytest

from sandbox import ImageError, ImageNotFound, SandboxSpec, run
from sandbox.images import get, import_image, list_images, remove_image

from .helpers import sandbox_cli

pytestmark = pytest.mark.root


def _rootfs(tmp_path):
    busybox = get("busybox").layers[0]
    root = tmp_path / "rootfs"
    subprocess.run(["cp", "-a", busybox, str(root)], check=True)
    (root / "etc/os-release").write_text("NAME=imported\n")
    return root


def test_import_a_directory_and_run_it(tmp_path):
    import_image(str(_rootfs(tmp_path)), "fromdir")
    try:
        r = run(SandboxSpec(image="fromdir", command=["cat", "/etc/os-release"]))
        assert r.stdout == b"NAME=imported\n"
        assert "fromdir" in {i.name for i in list_images()}
    finally:
        remove_image("fromdir")


def test_import_a_tarball_through_the_cli(tmp_path):
    root = _rootfs(tmp_path)
    tarball = tmp_path / "rootfs.tar.gz"
    with tarfile.open(tarball, "w:gz") as tar:
        tar.add(root, arcname=".")
    out = sandbox_cli("image", "import", str(tarball), "fromtar")
    assert out.returncode == 0, out.stderr
    try:
        listed = sandbox_cli("images")
        assert b"fromtar" in listed.stdout
        r = sandbox_cli("run", "fromtar", "--", "cat", "/etc/os-release")
        assert r.stdout == b"NAME=imported\n"
    finally:
        assert sandbox_cli("image", "rm", "fromtar").returncode == 0


def test_bad_imports_leave_nothing(tmp_path):
    (tmp_path / "notatar").write_text("hello")
    with pytest.raises(ImageError, match="expected a directory or a tar archive"):
        import_image(str(tmp_path / "notatar"), "bad")
    with pytest.raises(ImageError, match="no such file"):
        import_image(str(tmp_path / "missing"), "bad")
    with pytest.raises(ImageError, match="invalid image name"):
        import_image(str(tmp_path), "Bad Name")
    with pytest.raises(ImageError, match="reserved"):
        import_image(str(tmp_path), "busybox")
    assert "bad" not in {i.name for i in list_images()}
    out = sandbox_cli("image", "import", str(tmp_path / "missing"), "bad")
    assert out.returncode == 125 and out.stderr.count(b"\n") == 1


def test_unknown_image_is_a_clear_error():
    with pytest.raises(ImageNotFound, match="known: busybox, host"):
        run(SandboxSpec(image="nosuch", command=["true"]))
    out = sandbox_cli("run", "nosuch", "--", "true")
    assert out.returncode == 125 and b"image 'nosuch' not found" in out.stderr
