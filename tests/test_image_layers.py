"""Layers: OCI whiteouts as overlay whiteouts, upper dirs packed back into layers, deep stacks."""

import io
import os
import stat
import tarfile

import pytest

from sandbox import SandboxSpec, images, run
from sandbox.images import remove_image
from sandbox.images.unpack import OPAQUE_XATTR, OverlayFormat, Target, UnpackError, walk
from sandbox.rootfs import upper_parts

from .image_helpers import image_on_busybox, store_is_consistent, tar_layer

pytestmark = pytest.mark.root


def sh(image, script, **spec):
    return run(SandboxSpec(image=image, command=["sh", "-c", script], **spec))


def test_a_file_deleted_in_a_later_layer_is_gone_and_an_opaque_dir_replaces_the_lower_one():
    lower = tar_layer(("data", None), ("data/a", "a"), ("data/keep", "k"), ("data/dir", None),
                      ("data/dir/old", "o"), ("data/dir/sub", None), ("data/dir/sub/deep", "d"))
    upper = tar_layer(("data", None), ("data/.wh.a", b""), ("data/dir", None),
                      ("data/dir/.wh..wh..opq", b""), ("data/dir/new", "n"))
    image_on_busybox("whiteouts:1", lower, upper)
    try:
        r = sh("whiteouts:1", "ls /data; echo --; ls -R /data/dir; cat /data/a 2>&1 || true")
        assert r.stdout.decode().split() == ["dir", "keep", "--", "/data/dir:", "new",
                                             "cat:", "can't", "open", "'/data/a':", "No", "such",
                                             "file", "or", "directory"]
    finally:
        remove_image("whiteouts:1")


def test_whiteouts_on_disk_are_overlay_whiteouts(tmp_path):
    root = tmp_path / "layer"
    root.mkdir()
    layer = tar_layer(("kept", "x"), (".wh.kept", b""), (".wh.gone", b""), ("dir", None),
                      ("dir/.wh..wh..opq", b""), (".wh.again", b""), ("again", None),
                      (".wh..wh.plnk", b""))
    with Target(root, disk_format=OverlayFormat()) as target:
        walk(io.BytesIO(layer), target)
    gone = os.lstat(root / "gone")
    assert stat.S_ISCHR(gone.st_mode) and gone.st_rdev == 0
    assert (root / "kept").read_text() == "x"  # a whiteout hides lower layers only
    assert os.getxattr(root / "dir", OPAQUE_XATTR) == b"y"
    assert (root / "again").is_dir() and os.getxattr(root / "again", OPAQUE_XATTR) == b"y"
    assert sorted(os.listdir(root)) == ["again", "dir", "gone", "kept"]
    with (pytest.raises(UnpackError, match="a whiteout of nothing"),
          Target(root, disk_format=OverlayFormat()) as target):
        walk(io.BytesIO(tar_layer((".wh.", b""))), target)


def test_a_sandboxs_upper_dir_becomes_a_layer_with_its_deletions(tmp_path):
    base = image_on_busybox("changes:base", tar_layer(("data", None), ("data/old", "o"),
                                                      ("data/dir", None), ("data/dir/x", "x")))
    upper = tmp_path / "upper"
    upper.mkdir()
    script = ("rm /data/old; rm -r /data/dir; mkdir /data/dir; echo y > /data/dir/y; "
              "echo new > /data/new; ln -s new /data/link; rm /etc/hosts")
    try:
        r = sh("changes:base", script, upper_dir=str(upper))
        assert r.exit_code == 0, r.stderr
        image = images.get("changes:base")
        layer = images.layer_from_upper(upper_parts(image, str(upper)))
        with tarfile.open(images.layout.blob_path(layer.digest)) as tar:
            names = sorted(tar.getnames())
        assert "data/.wh.old" in names and "data/dir/.wh..wh..opq" in names and "etc/.wh.hosts" in names
        images.write_image([layer], base.config.config, base=base, tag="changes:1")
        r = sh("changes:1", "ls /data; ls /data/dir; readlink /data/link; ls /etc/hosts 2>&1")
        assert r.stdout.decode().split()[:5] == ["dir", "link", "new", "y", "new"]
        assert b"No such file" in r.stdout
    finally:
        remove_image("changes:base")
        remove_image("changes:1", force=True)
    assert store_is_consistent() == []


@pytest.mark.parametrize("how", ["auto", "fsconfig", "links"])
def test_an_image_of_120_layers_runs(how, monkeypatch):
    """``auto``: fsconfig(lowerdir+) where the kernel has it (6.8+), else short links."""
    from sandbox.linux import lowerdir_plus_supported

    if how == "links":
        monkeypatch.setenv("SANDBOX_OVERLAY_MOUNT", "links")
    elif how == "fsconfig" and not lowerdir_plus_supported():
        pytest.skip(f"overlayfs of Linux {os.uname().release} takes no lowerdir+ (6.8+)")
    elif how == "auto":
        how = "fsconfig" if lowerdir_plus_supported() else "links"
    tag = "deep:120"
    if tag not in {t for i in images.list_images() for t in i.tags}:
        layers = [tar_layer(("layers", None), (f"layers/{i:03d}", str(i)), ("top", f"{i}\n"))
                  for i in range(119)]
        image_on_busybox(tag, *layers)
    assert len(images.lookup(tag).layers) == 120
    r = sh(tag, "cat /top; ls /layers | wc -l; cat /layers/000")
    assert r.exit_code == 0, r.stderr
    assert r.stdout.split() == [b"118", b"119", b"0"]
    step = next(op.step for op in _plan(tag).ops if op.kind == "overlay")
    assert ("short links" in step) == (how == "links") and "120 layers" in step


def _plan(tag):
    from sandbox.planner import build_plan

    return build_plan(SandboxSpec(image=tag, command=["true"]), images.get(tag), "x", "/run/x", None)
