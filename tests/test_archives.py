"""`sandbox save` and `sandbox load`: docker-archive and OCI layout tars, with podman, skopeo,
buildah and umoci as the peers that read what we write and write what we read.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import stat
import subprocess
import tarfile

import pytest

from sandbox import ImageError, images
from sandbox.images import layout, lookup
from sandbox.images.archive import load_archive, save_images

from .helpers import sandbox_cli
from .image_helpers import image_on_busybox, store_is_consistent
from .registry_peers import busybox_rootfs, containers, need
from .test_unpack import archive, member

pytestmark = pytest.mark.usefixtures("needs_root")


def _two_layer_image(tag: str) -> images.StoredImage:
    """busybox, a layer with files (a setuid one among them), a layer that deletes and replaces."""
    first = archive(member("app", tarfile.DIRTYPE, mode=0o755), member("app/keep.txt", data=b"keep\n"),
                    member("app/gone.txt", data=b"gone\n"), member("app/tool", data=b"#!/bin/sh\necho tool\n", mode=0o4755),
                    member("app/link", tarfile.SYMTYPE, link="keep.txt"))
    second = archive(member("app/.wh.gone.txt"), member("app/new.txt", data=b"new\n", mode=0o600),
                     member("app/tag.txt", data=tag.encode()))  # a layer of this image's own
    return image_on_busybox(tag, first, second)


def _save(tmp_path, fmt: str, *refs: str):
    path = tmp_path / f"{fmt}.tar"
    with open(path, "wb") as out:
        save_images(list(refs), out, fmt=fmt)
    return path


def _drop(*tags: str) -> None:
    for tag in tags:
        images.remove_image(tag)


@pytest.mark.parametrize("fmt", ["docker-archive", "oci"])
@pytest.mark.parametrize("compress", ["plain", "gzip", "zstd", "stdin"])
def test_save_then_load_gives_the_same_image(tmp_path, fmt, compress):
    image = _two_layer_image("saved:1")
    path = _save(tmp_path, fmt, "saved:1")
    _drop("saved:1")
    data = path.read_bytes()
    if compress == "gzip":
        data = gzip.compress(data)
    elif compress == "zstd":
        data = pytest.importorskip("zstandard").compress(data)
    if compress == "stdin":
        out = sandbox_cli("load", input=data)
    else:
        (tmp_path / "in").write_bytes(data)
        out = sandbox_cli("load", "-i", str(tmp_path / "in"))
    assert out.returncode == 0, out.stderr
    loaded = lookup("saved:1")
    assert out.stdout.decode() == f"Loaded image: saved:1 ({loaded.id})\n"
    assert loaded.config.diff_ids == image.config.diff_ids
    if fmt == "oci":
        assert loaded.id == image.id  # the manifest's bytes travel as they are
    top = loaded.layers[-1].path
    assert os.path.exists(os.path.join(top, "app/new.txt"))
    assert store_is_consistent() == []


def test_a_loaded_image_runs_and_keeps_setuid_inside_only(tmp_path):
    _two_layer_image("runme:1")
    path = _save(tmp_path, "docker-archive", "runme:1")
    _drop("runme:1")
    load_archive(open(path, "rb"), str(path))
    out = sandbox_cli("run", "runme:1", "--", "sh", "-c", "cat /app/keep.txt /app/new.txt; stat -c %a /app/tool; "
                      "ls /app")
    assert out.returncode == 0, out.stderr
    assert out.stdout.decode().split() == ["keep", "new", "4755", "keep.txt", "link", "new.txt", "tag.txt", "tool"]
    assert stat.S_IMODE(os.stat(layout.root()).st_mode) & 0o077 == 0  # no other host user reaches it


def test_podman_loads_and_runs_what_we_save_and_skopeo_reads_it(tmp_path):
    need("skopeo", "skopeo")
    image = _two_layer_image("topodman:1")
    docker_tar = _save(tmp_path, "docker-archive", "topodman:1")
    oci_tar = _save(tmp_path, "oci", "topodman:1")
    seen = json.loads(subprocess.run(["skopeo", "inspect", f"docker-archive:{docker_tar}"], check=True,
                                     capture_output=True).stdout)
    assert seen["Layers"] == list(image.config.diff_ids)
    seen = json.loads(subprocess.run(["skopeo", "inspect", f"oci-archive:{oci_tar}:topodman:1"], check=True,
                                     capture_output=True).stdout)
    assert seen["Digest"] == image.id
    with containers() as tools:
        for path in (docker_tar, oci_tar):
            loaded = tools.podman("load", "-i", str(path))
            assert "topodman:1" in loaded.stdout, loaded.stderr
        ran = tools.podman_run("localhost/topodman:1", "sh", "-c", "cat /app/keep.txt /app/new.txt; ls /app")
        assert ran.stdout.split() == ["keep", "new", "keep.txt", "link", "new.txt", "tag.txt", "tool"], ran.stderr


@pytest.mark.parametrize("transport", ["oci-archive", "docker-archive"])
def test_a_buildah_image_written_by_skopeo_loads_and_runs_here(tmp_path, transport):
    need("skopeo", "skopeo")
    with containers() as tools:
        rootfs = busybox_rootfs(tmp_path / "rootfs")
        ctr = tools.buildah("from", "scratch").stdout.strip()
        tools.buildah("copy", ctr, str(rootfs), "/")
        tools.buildah("config", "--cmd", "cat /etc/os-release", ctr)
        tools.buildah("commit", "-q", ctr, "localhost/frombuildah:1")
        ctr = tools.buildah("from", "localhost/frombuildah:1").stdout.strip()
        tools.buildah("--runtime", "runc", "run", "--isolation", "chroot", ctr, "--", "sh", "-c",
                      "echo second > /second.txt && rm /etc/os-release && echo NAME=over > /etc/os-release")
        tools.buildah("commit", "-q", ctr, "localhost/frombuildah:2")
        dest = tmp_path / "image.tar"
        subprocess.run(["skopeo", "copy", "-q", f"{tools.storage}localhost/frombuildah:2",
                        f"{transport}:{dest}:localhost/frombuildah:2"], check=True, capture_output=True, timeout=120)
    out = sandbox_cli("load", "-i", str(dest))
    assert out.returncode == 0, out.stderr
    assert b"Loaded image: localhost/frombuildah:2" in out.stdout
    out = sandbox_cli("run", "localhost/frombuildah:2", "--", "sh", "-c", "cat /second.txt /etc/os-release")
    assert out.returncode == 0, out.stderr
    assert out.stdout == b"second\nNAME=over\n"
    assert len(lookup("localhost/frombuildah:2").layers) == 2


def _tree_of(root: str) -> dict[str, tuple]:
    """path -> (type, mode, content hash or link target) of a tree, as a user sees it."""
    found = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            full = os.path.join(dirpath, name)
            st = os.lstat(full)
            rel = os.path.relpath(full, root)
            if stat.S_ISREG(st.st_mode):
                what = hashlib.sha256(open(full, "rb").read()).hexdigest()
            elif stat.S_ISLNK(st.st_mode):
                what = os.readlink(full)
            else:
                what = ""
            found[rel] = (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), what)
    return found


def test_umoci_unpacks_our_oci_layout_to_the_tree_we_unpack(tmp_path):
    need("umoci", "umoci")
    _two_layer_image("toumoci:1")
    path = _save(tmp_path, "oci", "toumoci:1")
    (tmp_path / "layout").mkdir()
    with tarfile.open(path) as tar:
        tar.extractall(tmp_path / "layout", filter="fully_trusted")
    subprocess.run(["umoci", "unpack", "--image", f"{tmp_path / 'layout'}:toumoci:1", str(tmp_path / "bundle")],
                   check=True, capture_output=True)
    theirs = _tree_of(str(tmp_path / "bundle/rootfs"))
    ours = _merged_view("toumoci:1", tmp_path / "merged")
    assert theirs == ours
    assert "app/gone.txt" not in ours and ours["app/tool"][1] == 0o4755


def _merged_view(tag: str, dest) -> dict[str, tuple]:
    """The image's root as a sandbox sees it: its overlay, mounted here read-only."""
    image = images.get(tag)
    dest.mkdir()
    lower = ":".join(image.layers)
    subprocess.run(["mount", "-t", "overlay", "overlay", "-o", f"ro,lowerdir={lower}", str(dest)], check=True)
    try:
        return _tree_of(str(dest))
    finally:
        subprocess.run(["umount", str(dest)], check=True)


# -- untrusted archives ----------------------------------------------------------

def _docker_archive(layers: list[bytes], diff_ids: list[str] | None = None, tags=("evil:1",)) -> bytes:
    config = {"architecture": "amd64", "os": "linux", "config": {},
              "rootfs": {"type": "layers", "diff_ids": diff_ids or
                         ["sha256:" + hashlib.sha256(data).hexdigest() for data in layers]}}
    entries = [("config.json", json.dumps(config).encode())]
    entries += [(f"l{i}/layer.tar", data) for i, data in enumerate(layers)]
    entries.append(("manifest.json", json.dumps([{"Config": "config.json", "RepoTags": list(tags),
                                                  "Layers": [f"l{i}/layer.tar" for i in range(len(layers))]}]).encode()))
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in entries:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _blobs_and_layers() -> tuple[set, set]:
    return set(os.listdir(layout.root() / "blobs/sha256")), set(os.listdir(layout.root() / "layers"))


def test_a_layer_that_does_not_match_its_diff_id_is_refused_and_nothing_is_stored(tmp_path):
    layout.ensure()
    before = _blobs_and_layers()
    good = archive(member("f", data=b"content\n"))
    bad = _docker_archive([good], diff_ids=["sha256:" + "1" * 64])
    with pytest.raises(ImageError, match=r"unpacks to sha256:[0-9a-f]+, not the diffID sha256:1{64}"):
        load_archive(io.BytesIO(bad), "bad.tar")
    assert _blobs_and_layers() == before
    with pytest.raises(ImageError):
        lookup("evil:1")
    assert store_is_consistent() == []


def test_an_oci_blob_that_does_not_match_its_digest_is_refused_and_not_stored(tmp_path):
    image = _two_layer_image("tamper:1")
    path = _save(tmp_path, "oci", "tamper:1")
    _drop("tamper:1")
    images.prune()
    top = image.layers[-1]
    buf = io.BytesIO()
    with tarfile.open(path) as src, tarfile.open(fileobj=buf, mode="w") as dst:
        for info in src:
            data = src.extractfile(info).read() if info.isreg() else None
            if info.name == f"blobs/sha256/{top.digest[7:]}":
                data = data.replace(b"new\n", b"NEW\n")
            dst.addfile(info, io.BytesIO(data) if data is not None else None)
    with pytest.raises(ImageError, match=rf"layer {top.digest} does not match its digest"):
        load_archive(io.BytesIO(buf.getvalue()), "tampered.tar")
    assert not layout.has_blob(top.digest)
    assert not (layout.root() / "layers" / top.diff_id[7:]).exists()
    assert store_is_consistent() == []


def test_a_layer_that_reaches_outside_is_refused_in_one_line(tmp_path):
    host = tmp_path / "host-secret"
    host.write_text("secret\n")
    attacks = {
        "dotdot": archive(member("../escaped", data=b"x")),
        "absolute": archive(member(str(tmp_path / "abs-escape"), data=b"x")),
        "hardlink out": archive(member("hl", tarfile.LNKTYPE, link=str(host))),
        "through a symlink": archive(member("out", tarfile.SYMTYPE, link=str(tmp_path)),
                                     member("out/written", data=b"x")),
        "device": archive(member("sda", tarfile.BLKTYPE)),
    }
    for what, layer in attacks.items():
        (tmp_path / f"{what}.tar").write_bytes(_docker_archive([layer]))
        out = sandbox_cli("load", "-i", str(tmp_path / f"{what}.tar"))
        assert out.returncode == 125 and out.stderr.count(b"\n") == 1, (what, out.stderr)
        assert b"archive member" in out.stderr, (what, out.stderr)
    assert host.read_text() == "secret\n"
    assert not (tmp_path / "abs-escape").exists() and not (tmp_path / "written").exists()
    assert not os.path.exists(os.path.join(tmp_path.parent, "escaped"))
    assert store_is_consistent() == []


def test_archives_that_are_not_image_archives_are_one_line(tmp_path):
    cases = {"garbage": b"not an archive at all",
             "rootfs": archive(member("etc/os-release", data=b"x")),
             "outside": _outer_with("../manifest.json"),
             "no name": _docker_archive([archive(member("f", data=b"x"))], tags=())}
    for what, data in cases.items():
        (tmp_path / "x.tar").write_bytes(data)
        out = sandbox_cli("load", "-i", str(tmp_path / "x.tar"))
        assert out.returncode == 125 and out.stderr.count(b"\n") == 1, (what, out.stderr)
    assert b"has no name (give it one with --tag NAME[:TAG])" in out.stderr
    out = sandbox_cli("load", "-i", str(tmp_path / "x.tar"), "--tag", "named:1")
    assert out.returncode == 0, out.stderr
    assert store_is_consistent() == []


def _outer_with(name: str) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo(name)
        tar.addfile(info, io.BytesIO())
    return buf.getvalue()


def test_save_writes_nothing_half(tmp_path):
    out = sandbox_cli("save", "-o", str(tmp_path / "x.tar"), "no-such-image:1")
    assert out.returncode == 125 and out.stderr.count(b"\n") == 1
    assert os.listdir(tmp_path) == []
