"""The image store through the engine and the CLI: imports, tags, runs, inspect, rmi, prune."""

import json
import os
import shutil
import subprocess
import tarfile

import pytest

from sandbox import ImageError, ImageNotFound, SandboxSpec, run
from sandbox.images import get, import_image, list_images, lookup, remove_image
from sandbox.images import layout
from sandbox.images.oci import ImageConfig

from .helpers import sandbox_cli
from .image_helpers import image_on_busybox, store_is_consistent, tar_layer

pytestmark = pytest.mark.root


def _rootfs(tmp_path):
    busybox = get("busybox").layers[0]
    root = tmp_path / "rootfs"
    subprocess.run(["cp", "-a", busybox, str(root)], check=True)
    (root / "etc/os-release").write_text("NAME=imported\n")
    return root


def _tags():
    return {t for i in list_images() for t in i.tags}


def test_import_a_directory_and_run_it(tmp_path):
    import_image(str(_rootfs(tmp_path)), "fromdir")
    try:
        r = run(SandboxSpec(image="fromdir", command=["cat", "/etc/os-release"]))
        assert r.stdout == b"NAME=imported\n"
        assert "fromdir:latest" in _tags()
    finally:
        remove_image("fromdir")


def test_import_a_tarball_through_the_cli_and_list_it(tmp_path):
    root = _rootfs(tmp_path)
    tarball = tmp_path / "rootfs.tar.gz"
    with tarfile.open(tarball, "w:gz") as tar:
        tar.add(root, arcname=".")
    out = sandbox_cli("image", "import", str(tarball), "fromtar:v1")
    assert out.returncode == 0, out.stderr
    try:
        listed = sandbox_cli("images").stdout.decode().splitlines()
        assert listed[0].split() == ["NAME", "TAG", "ID", "SIZE", "CREATED"]
        row = next(line.split() for line in listed if line.startswith("fromtar "))
        assert row[1] == "v1" and row[2] == lookup("fromtar:v1").id[7:19]
        r = sandbox_cli("run", "fromtar:v1", "--", "cat", "/etc/os-release")
        assert r.stdout == b"NAME=imported\n"
    finally:
        assert sandbox_cli("image", "rm", "fromtar:v1").returncode == 0
    assert "fromtar:v1" not in _tags()


def test_bad_input_is_one_line_exit_125_and_creates_nothing(tmp_path):
    layout.ensure()
    (tmp_path / "notatar").write_text("hello")
    with pytest.raises(ImageError, match="expected a directory or a tar archive"):
        import_image(str(tmp_path / "notatar"), "bad")
    with pytest.raises(ImageError, match="no such file"):
        import_image(str(tmp_path / "missing"), "bad")
    with pytest.raises(ImageError, match="invalid image name"):
        import_image(str(tmp_path), "Bad Name")
    with pytest.raises(ImageError, match="reserved"):
        import_image(str(tmp_path), "busybox")
    blobs_before = sorted(os.listdir(layout.root() / "blobs" / "sha256"))
    for args in (("image", "import", str(tmp_path / "missing"), "bad"),
                 ("image", "import", str(tmp_path / "notatar"), "bad"),
                 ("tag", "busybox", "bad:t@g"), ("tag", "nosuch", "bad:1"), ("tag", "busybox", "host:1"),
                 ("rmi", "nosuch:1"), ("run", "nosuch:tag", "--", "true"), ("run", "bad:-tag", "--", "true"),
                 ("image", "inspect", "nosuch"), ("image", "history", "Bad"), ("commit", "nosuch", "x:1")):
        out = sandbox_cli(*args)
        assert out.returncode == 125 and out.stderr.count(b"\n") == 1, (args, out.stderr)
        assert b"Traceback" not in out.stderr
    assert "bad:latest" not in _tags() and "bad:1" not in _tags()
    assert sorted(os.listdir(layout.root() / "blobs" / "sha256")) == blobs_before
    assert store_is_consistent() == []


def test_unknown_image_is_a_clear_error():
    with pytest.raises(ImageNotFound, match=r"image 'nosuch' not found \(known: busybox, .*host"):
        run(SandboxSpec(image="nosuch", command=["true"]))
    out = sandbox_cli("run", "nosuch", "--", "true")
    assert out.returncode == 125 and b"image 'nosuch' not found" in out.stderr


def test_tag_inspect_history_and_rmi_through_the_cli():
    image_on_busybox("hist:1", tar_layer(("app", None), ("app/a", "A")))
    try:
        assert sandbox_cli("tag", "hist:1", "hist:2").returncode == 0
        assert lookup("hist:2").id == lookup("hist:1").id
        (info,) = json.loads(sandbox_cli("image", "inspect", "hist:2").stdout)
        assert info["RepoTags"] == ["hist:1", "hist:2"] and info["Config"]["Cmd"] == ["sh"]
        assert len(info["RootFS"]["Layers"]) == 2 and info["History"][-1]["created_by"] == "test layer 0"
        assert all(d["digest"].startswith("sha256:") for d in info["Layers"])
        lines = sandbox_cli("image", "history", "hist:1").stdout.decode().splitlines()
        assert lines[1].split()[:3] == ["CREATED", "CREATED", "BY"] and "test layer 0" in lines[2]
        assert "busybox from" in lines[3]
        out = sandbox_cli("rmi", "hist:1")
        assert out.returncode == 0 and "hist:1" not in _tags() and "hist:2" in _tags()
    finally:
        remove_image("hist:2")
    assert store_is_consistent() == []


def test_run_with_no_command_runs_the_images_cmd_with_its_env_workdir_and_user():
    config = ImageConfig(env=("PATH=/bin", "GREETING=hello"), cmd=("sh", "-c", "echo $GREETING; pwd; id -u"),
                         workdir="/srv/app", user="65534")
    image_on_busybox("withcmd:1", tar_layer(("srv", None)), config=config)
    try:
        out = sandbox_cli("run", "withcmd:1")
        assert out.returncode == 0 and out.stdout == b"hello\n/srv/app\n65534\n", out.stderr
        out = sandbox_cli("run", "-u", "0", "-w", "/", "withcmd:1", "--", "sh", "-c", "pwd; id -u")
        assert out.stdout == b"/\n0\n"
        entry = ImageConfig(entrypoint=("echo", "from-entrypoint"), cmd=("default",))
        image_on_busybox("withentry:1", config=entry)
        assert sandbox_cli("run", "withentry:1").stdout == b"from-entrypoint default\n"
        assert sandbox_cli("run", "withentry:1", "--", "given").stdout == b"from-entrypoint given\n"
    finally:
        remove_image("withcmd:1")
        remove_image("withentry:1")


def test_two_images_on_one_base_store_the_base_once():
    busybox = lookup("busybox")
    image_on_busybox("shares:1", tar_layer(("one", "1")))
    image_on_busybox("shares:2", tar_layer(("two", "2")))
    try:
        layer_dirs = os.listdir(layout.root() / "layers")
        base = busybox.layers[0].diff_id[7:]
        assert layer_dirs.count(base) == 1
        assert lookup("shares:1").layers[0] == lookup("shares:2").layers[0] == busybox.layers[0]
    finally:
        remove_image("shares:1")
        remove_image("shares:2")


def test_prune_drops_cache_and_unreferenced_content_and_says_how_much():
    from sandbox import images

    image = image_on_busybox("cached:1", tar_layer(("big", os.urandom(1 << 20))))
    images.cache_put("a build step", image.descriptor)
    remove_image("cached:1")  # the cache entry still holds it
    layer = image.layers[-1]
    assert os.path.isdir(layer.path) and images.cache_get("a build step") == image.descriptor
    out = sandbox_cli("image", "prune")
    assert out.returncode == 0 and b"1 build cache entries" in out.stdout and b"MiB" in out.stdout
    assert not os.path.exists(layer.path) and images.cache_get("a build step") is None
    assert lookup("busybox")  # tagged images stay
    assert store_is_consistent() == []


def test_the_store_is_an_oci_layout_that_skopeo_and_umoci_read(tmp_path):
    for tool in ("skopeo", "umoci"):
        if not shutil.which(tool):
            pytest.skip(f"needs {tool} (apt-get install {tool})")
    image_on_busybox("peer:1", tar_layer(("etc", None), ("etc/.wh.hosts", b""), ("etc/peer", "yes")))
    try:
        store = str(layout.root())
        copied = subprocess.run(["skopeo", "copy", "-q", f"oci:{store}:peer:1", f"dir:{tmp_path}/copy"],
                                capture_output=True)
        assert copied.returncode == 0, copied.stderr  # skopeo checks every blob's digest
        bundle = tmp_path / "bundle"
        out = subprocess.run(["umoci", "unpack", "--image", f"{store}:peer:1", str(bundle)],
                             capture_output=True)
        assert out.returncode == 0, out.stderr
        assert (bundle / "rootfs/etc/peer").read_text() == "yes"
        assert not (bundle / "rootfs/etc/hosts").exists() and (bundle / "rootfs/etc/passwd").exists()
    finally:
        remove_image("peer:1")


def test_images_of_the_old_directory_store_move_in(tmp_path, monkeypatch):
    from sandbox import images
    from sandbox.images import engine

    old = tmp_path / "state/images/legacy"
    shutil.copytree(_rootfs(tmp_path), old / "rootfs", symlinks=True)
    monkeypatch.setenv("SANDBOX_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setattr(engine, "_CACHE", {})
    (old / "image.json").write_text(json.dumps({"name": "legacy", "env": {"FROM_OLD": "1"}}))
    r = run(SandboxSpec(image="legacy", command=["sh", "-c", "cat /etc/os-release; echo $FROM_OLD"]))
    assert r.stdout == b"NAME=imported\n1\n"
    assert not old.exists() and "legacy:latest" in {t for i in images.list_images() for t in i.tags}
