"""The unpacker (sandbox.images.unpack): one test per way an archive could reach outside its image.

Each attack is an archive made here with tarfile; each test checks both the one
line that refuses it and that nothing outside the image changed. Most need no
root (owners are applied only as root); the store-level ones import into the
suite's own state root.
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import lzma
import os
import stat
import tarfile

import pytest

from sandbox import ImageError
from sandbox.images import import_image, list_images, lookup, remove_image
from sandbox.images.layout import root as images_dir
from sandbox.images.tree import walk_directory
from sandbox.images.unpack import Bounds, Target, UnpackError, apply_entry, clean_name, walk
from sandbox.linux import files

from .helpers import sandbox_cli


def member(name: str, kind: bytes = tarfile.REGTYPE, *, data: bytes = b"", link: str = "",
           mode: int = 0o644, uid: int = 0, gid: int = 0) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mode, info.uid, info.gid = kind, link, mode, uid, gid
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    return info, data


def archive(*members: tuple[tarfile.TarInfo, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return buf.getvalue()


def unpack(data: bytes, root, **kw) -> Target:
    root.mkdir(exist_ok=True)
    with Target(root, **kw) as target:
        walk(io.BytesIO(data), target)
    return target


@pytest.fixture
def host_file(tmp_path):
    """A file outside the image, as the issue's /tmp/x/secret: root's, mode 600."""
    secret = tmp_path / "host" / "secret"
    secret.parent.mkdir()
    secret.write_text("host secret\n")
    secret.chmod(0o600)
    return secret


def fingerprint(path) -> tuple:
    st = os.lstat(path)
    return st.st_mode, st.st_uid, st.st_gid, st.st_mtime_ns, st.st_nlink, st.st_size


def test_names_are_cleaned_and_paths_out_refused():
    assert clean_name("./etc//passwd") == "etc/passwd"
    assert clean_name("./") == ""
    for bad in ("../x", "a/../../x", "a/.."):
        with pytest.raises(UnpackError, match=r"'\.\.'.*accepted: relative paths inside the image"):
            clean_name(bad)
    with pytest.raises(UnpackError, match="an absolute path"):
        clean_name("/etc/passwd")


def test_hard_link_to_a_host_file_is_refused_and_the_host_file_untouched(tmp_path, host_file):
    before = fingerprint(host_file)
    evil = archive(member("hl", tarfile.LNKTYPE, link=str(host_file), mode=0o777, uid=1234, gid=1234))
    with pytest.raises(UnpackError, match=r"archive member 'hl': a hard link to '/.*secret', "
                                          r"outside the image; accepted: hard links to regular"):
        unpack(evil, tmp_path / "root")
    assert fingerprint(host_file) == before
    assert not os.path.lexists(tmp_path / "root" / "hl")


def test_hard_link_up_and_out_and_to_a_missing_member_are_refused(tmp_path, host_file):
    for link in ("../host/secret", "etc/passwd"):
        with pytest.raises(UnpackError, match="hard link"):
            unpack(archive(member("hl", tarfile.LNKTYPE, link=link)), tmp_path / "root")
    assert fingerprint(host_file)[4] == 1


def test_hard_link_through_a_symlink_the_archive_made_is_refused(tmp_path, host_file):
    """The symlink replaced an earlier member: that name is no file any more."""
    evil = archive(member("f", data=b"x"), member("f", tarfile.SYMTYPE, link=str(host_file)),
                   member("hl", tarfile.LNKTYPE, link="f"))
    with pytest.raises(UnpackError, match="not a file unpacked before it"):
        unpack(evil, tmp_path / "root")
    assert fingerprint(host_file)[4] == 1


def test_hard_link_to_an_earlier_file_shares_it_and_keeps_its_mode(tmp_path):
    target = unpack(archive(member("bin/a", data=b"hi", mode=0o755),
                            member("bin/b", tarfile.LNKTYPE, link="./bin/a", mode=0o777)),
                    tmp_path / "root")
    a, b = os.lstat(tmp_path / "root/bin/a"), os.lstat(tmp_path / "root/bin/b")
    assert (a.st_ino, a.st_nlink, stat.S_IMODE(b.st_mode)) == (b.st_ino, 2, 0o755)
    assert target.members == 2 and target.bytes == 2


def test_symlink_then_write_through_it_is_refused(tmp_path, host_file):
    evil = archive(member("evil", tarfile.SYMTYPE, link=str(host_file.parent)),
                   member("evil/planted", data=b"gotcha"))
    with pytest.raises(UnpackError, match=r"archive member 'evil/planted': its parent 'evil' is "
                                          r"a symbolic link or a file"):
        unpack(evil, tmp_path / "root")
    assert sorted(os.listdir(host_file.parent)) == ["secret"]
    assert os.readlink(tmp_path / "root/evil") == str(host_file.parent)  # stored, not followed


def test_symlink_then_a_file_of_the_same_name_replaces_the_link(tmp_path, host_file):
    before = fingerprint(host_file)
    unpack(archive(member("x", tarfile.SYMTYPE, link=str(host_file)),
                   member("x", data=b"mine", mode=0o4777)), tmp_path / "root")
    assert fingerprint(host_file) == before and host_file.read_text() == "host secret\n"
    assert (tmp_path / "root/x").read_bytes() == b"mine"


def test_symlink_then_a_directory_of_the_same_name_does_not_follow_it(tmp_path, host_file):
    before = fingerprint(host_file.parent)
    unpack(archive(member("d", tarfile.SYMTYPE, link=str(host_file.parent)),
                   member("d", tarfile.DIRTYPE, mode=0o777)), tmp_path / "root")
    assert fingerprint(host_file.parent) == before
    assert stat.S_ISDIR(os.lstat(tmp_path / "root/d").st_mode)


def test_writes_through_a_symlink_are_refused_without_openat2(tmp_path, host_file, monkeypatch):
    monkeypatch.setattr(files, "have_openat2", False)
    evil = archive(member("a/evil", tarfile.SYMTYPE, link=str(host_file.parent)),
                   member("a/evil/deeper/planted", data=b"gotcha"))
    with pytest.raises(UnpackError, match="its parent 'a/evil' is a symbolic link"):
        unpack(evil, tmp_path / "root")
    assert sorted(os.listdir(host_file.parent)) == ["secret"]


def test_dotdot_and_absolute_members_are_refused(tmp_path):
    (tmp_path / "root").mkdir()
    for name in ("../x", "/abs"):
        with pytest.raises(UnpackError, match=f"archive member '{name}'"):
            unpack(archive(member(name, data=b"out")), tmp_path / "root")
    assert not (tmp_path / "x").exists() and not os.path.exists("/abs")
    assert os.listdir(tmp_path / "root") == []


def test_device_nodes_are_refused_and_left_out_under_dev(tmp_path):
    node = member("null2", tarfile.CHRTYPE, mode=0o666)
    node[0].devmajor, node[0].devminor = 1, 3
    with pytest.raises(UnpackError, match="'null2': a device node; accepted: regular files"):
        unpack(archive(node), tmp_path / "root")
    blk = member("dev/sda", tarfile.BLKTYPE)
    dev_null = member("dev/null", tarfile.CHRTYPE)
    dev_null[0].devmajor, dev_null[0].devminor = 1, 3
    unpack(archive(member("dev", tarfile.DIRTYPE, mode=0o755), dev_null, blk), tmp_path / "root")
    assert os.listdir(tmp_path / "root/dev") == []


def test_fifos_are_made_inside_without_opening_them(tmp_path):
    unpack(archive(member("run/fifo", tarfile.FIFOTYPE, mode=0o620)), tmp_path / "root")
    st = os.lstat(tmp_path / "root/run/fifo")
    assert stat.S_ISFIFO(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o620


def test_setuid_and_setgid_bits_are_kept(tmp_path):
    unpack(archive(member("bin/su", data=b"\x7fELF", mode=0o4755),
                   member("bin/wall", data=b"\x7fELF", mode=0o2755)), tmp_path / "root")
    assert stat.S_IMODE(os.lstat(tmp_path / "root/bin/su").st_mode) == 0o4755
    assert stat.S_IMODE(os.lstat(tmp_path / "root/bin/wall").st_mode) == 0o2755


@pytest.mark.root
def test_owners_are_applied_to_the_entries_themselves(tmp_path, host_file):
    unpack(archive(member("home/u", tarfile.DIRTYPE, mode=0o700, uid=1000, gid=1000),
                   member("home/u/f", data=b"x", mode=0o4750, uid=1000, gid=50),
                   member("home/u/l", tarfile.SYMTYPE, link=str(host_file), uid=1000, gid=1000)),
           tmp_path / "root")
    root = tmp_path / "root"
    assert (os.lstat(root / "home/u").st_uid, os.lstat(root / "home/u/f").st_gid) == (1000, 50)
    assert stat.S_IMODE(os.lstat(root / "home/u/f").st_mode) == 0o4750  # chown clears it: set after
    assert os.lstat(root / "home/u/l").st_uid == 1000
    assert (os.stat(host_file).st_uid, stat.S_IMODE(os.stat(host_file).st_mode)) == (0, 0o600)


def test_the_root_keeps_its_type(tmp_path):
    unpack(archive(member(".", tarfile.DIRTYPE, mode=0o777)), tmp_path / "root")
    with pytest.raises(UnpackError, match="would replace the image's root; accepted: a directory"):
        unpack(archive(member("./", tarfile.SYMTYPE, link="/")), tmp_path / "root")
    assert stat.S_ISDIR(os.lstat(tmp_path / "root").st_mode)


def test_a_tar_bomb_is_bounded_before_it_is_read(tmp_path):
    many = archive(*(member(f"f{i}") for i in range(11)))
    with pytest.raises(UnpackError, match="'f10': one member too many; accepted: at most 10"):
        unpack(many, tmp_path / "a", bounds=Bounds(members=10))
    big = archive(member("big", data=b"x" * 5000))
    with pytest.raises(UnpackError, match="'big': past the size limit"):
        unpack(big, tmp_path / "b", bounds=Bounds(bytes=4096))
    assert not (tmp_path / "b/big").exists()


def test_a_huge_extended_header_is_refused(tmp_path):
    info, data = member("x" * 3000, data=b"x")
    info.pax_headers = {"comment": "y" * 5000}
    with pytest.raises(UnpackError, match="an extended header of"):
        unpack(archive((info, data)), tmp_path / "root", bounds=Bounds(header=4096))


def test_truncated_and_corrupt_archives_are_one_error(tmp_path):
    whole = gzip.compress(archive(member("a", data=os.urandom(4096)), member("b", data=b"b")))
    with pytest.raises(UnpackError, match=r"truncated or corrupt|ends inside"):
        unpack(whole[: len(whole) // 2], tmp_path / "a")
    with pytest.raises(UnpackError, match="expected a directory or a tar archive"):
        unpack(b"hello, not a tar", tmp_path / "b")
    with pytest.raises(UnpackError, match="expected a directory or a tar archive"):
        unpack(b"", tmp_path / "c")


@pytest.mark.parametrize("compress", [lambda b: b, gzip.compress, lzma.compress, bz2.compress,
                                      lambda b: pytest.importorskip("zstandard").compress(b)],
                         ids=["plain", "gzip", "xz", "bzip2", "zstd"])
def test_the_decompressor_is_chosen_by_content(tmp_path, compress):
    plain = archive(member("etc/os-release", data=b"NAME=t\n"))
    seen = hashlib.sha256()
    (tmp_path / "root").mkdir()
    with Target(tmp_path / "root") as target:
        walk(io.BytesIO(compress(plain)), target, tee=seen.update)
    assert (tmp_path / "root/etc/os-release").read_bytes() == b"NAME=t\n"
    assert seen.hexdigest() == hashlib.sha256(plain).hexdigest()  # a layer's diffID


def test_a_directory_tree_takes_the_same_path(tmp_path, host_file):
    src = tmp_path / "src"
    (src / "bin").mkdir(parents=True)
    (src / "bin/tool").write_bytes(b"tool")
    (src / "bin/tool").chmod(0o4755)
    os.link(src / "bin/tool", src / "bin/alias")
    os.symlink(str(host_file), src / "leak")
    os.symlink(str(host_file.parent), src / "dirleak")
    os.mkfifo(src / "fifo")
    fd = os.open(src, os.O_RDONLY | os.O_DIRECTORY)
    try:
        (tmp_path / "root").mkdir()
        with Target(tmp_path / "root") as target:
            walk_directory(fd, target)
    finally:
        os.close(fd)
    root = tmp_path / "root"
    assert os.readlink(root / "leak") == str(host_file) and os.readlink(root / "dirleak")
    assert os.lstat(root / "bin/alias").st_ino == os.lstat(root / "bin/tool").st_ino
    assert stat.S_IMODE(os.lstat(root / "bin/tool").st_mode) == 0o4755
    assert stat.S_ISFIFO(os.lstat(root / "fifo").st_mode)
    assert fingerprint(host_file)[4] == 1


def test_a_member_written_twice_keeps_the_last(tmp_path):
    unpack(archive(member("d/f", data=b"1"), member("d", data=b"now a file"),
                   member("d", tarfile.DIRTYPE), member("d/g", data=b"2")), tmp_path / "root")
    assert os.listdir(tmp_path / "root/d") == ["g"]


def test_apply_entry_is_usable_alone(tmp_path):
    """The layered store drives apply_entry itself, member by member."""
    (tmp_path / "root").mkdir()
    with Target(tmp_path / "root") as target:
        info, data = member("a/b/c", data=b"abc")
        apply_entry(target, info, io.BytesIO(data))
        with pytest.raises(UnpackError, match="'a/b/c/d': its parent 'a/b/c' is a symbolic link or a file"):
            apply_entry(target, member("a/b/c/d")[0], io.BytesIO())
    assert (tmp_path / "root/a/b/c").read_bytes() == b"abc"


# -- through the store: sandbox image import ---------------------------------

def _store_is_clean() -> bool:
    """No work dir and no half-written file left in the store."""
    if not images_dir().is_dir():
        return True
    return not os.listdir(images_dir() / "tmp") and not [
        n for n in os.listdir(images_dir()) if n.startswith(".")]


def _tags() -> set[str]:
    return {t for i in list_images() for t in i.tags}


def test_import_refuses_the_issue_archive_and_leaves_nothing(tmp_path, host_file):
    tar_path = tmp_path / "h.tar"
    tar_path.write_bytes(archive(member("hl", tarfile.LNKTYPE, link=str(host_file), mode=0o777,
                                        uid=1234, gid=1234)))
    before = fingerprint(host_file)
    with pytest.raises(ImageError, match=r"^cannot import .*h\.tar: archive member 'hl': a hard link"):
        import_image(str(tar_path), "t")
    assert fingerprint(host_file) == before
    assert "t:latest" not in _tags() and _store_is_clean()


def test_import_refuses_a_copy_of_the_store_into_itself(tmp_path):
    images_dir().mkdir(parents=True, exist_ok=True)
    for source in (images_dir(), images_dir().parent):
        with pytest.raises(ImageError, match="it holds the image store"):
            import_image(str(source), "self")
    assert _store_is_clean()


@pytest.mark.root
def test_an_imported_image_is_out_of_reach_of_other_host_users(tmp_path):
    tar_path = tmp_path / "su.tar"
    tar_path.write_bytes(archive(member("bin/su", data=b"#!/bin/sh\n", mode=0o4755)))
    image = import_image(str(tar_path), "suid")
    try:
        assert stat.S_IMODE(os.lstat(os.path.join(image.layers[0].path, "bin/su")).st_mode) == 0o4755
        assert stat.S_IMODE(os.stat(images_dir()).st_mode) & 0o077 == 0
    finally:
        remove_image("suid")


def test_the_cli_refuses_the_issue_archive_in_one_line(tmp_path, host_file):
    tar_path = tmp_path / "h.tar"
    tar_path.write_bytes(archive(member("hl", tarfile.LNKTYPE, link=str(host_file), mode=0o777,
                                        uid=1234, gid=1234)))
    before = fingerprint(host_file)
    out = sandbox_cli("image", "import", str(tar_path), "t")
    assert out.returncode == 125 and out.stderr.count(b"\n") == 1, out.stderr
    assert b"archive member 'hl': a hard link to" in out.stderr
    assert fingerprint(host_file) == before and _store_is_clean()


def test_the_cli_reads_an_archive_from_stdin_and_refuses_a_truncated_one(tmp_path):
    whole = gzip.compress(archive(member("etc/os-release", data=b"NAME=stdin\n"),
                                  member("bin/big", data=os.urandom(1 << 16))))
    out = sandbox_cli("image", "import", "-", "fromstdin", input=whole)
    assert out.returncode == 0, out.stderr
    try:
        layer = lookup("fromstdin").layers[0].path
        assert open(os.path.join(layer, "etc/os-release"), "rb").read() == b"NAME=stdin\n"
    finally:
        remove_image("fromstdin")
    (tmp_path / "cut.tar.gz").write_bytes(whole[: len(whole) // 2])
    out = sandbox_cli("image", "import", str(tmp_path / "cut.tar.gz"), "cut")
    assert out.returncode == 125 and out.stderr.count(b"\n") == 1, out.stderr
    assert b"truncated or corrupt" in out.stderr and b"Traceback" not in out.stderr
    assert _store_is_clean()


# -- members that lie about their size, and bombs --------------------------------

def test_a_huge_member_is_refused_from_its_header_before_a_byte_is_read(tmp_path):
    info = tarfile.TarInfo("huge")
    info.size = 100 << 30  # 100 GiB claimed, past the default bound of 64 GiB
    stream = io.BytesIO(info.tobuf(tarfile.GNU_FORMAT) + b"x" * 4096)  # base-256 size field
    (tmp_path / "root").mkdir()
    with pytest.raises(UnpackError, match="'huge': past the size limit; accepted: at most 64 GiB"), \
            Target(tmp_path / "root") as target:
        walk(stream, target)
    assert os.listdir(tmp_path / "root") == []


def test_a_truncated_member_is_one_error(tmp_path):
    info = tarfile.TarInfo("cut")
    info.size = 1 << 20
    stream = io.BytesIO(info.tobuf(tarfile.USTAR_FORMAT) + b"x" * 1000)
    with pytest.raises(UnpackError, match=r"'cut': the archive ends inside this member|truncated"):
        unpack(stream.getvalue(), tmp_path / "root")


class _EmptyFiles(io.RawIOBase):
    """A tar stream of ``count`` empty files, made as it is read (a million is 512 MB of headers)."""

    def __init__(self, count: int) -> None:
        self.count, self.made, self.read_bytes, self._buffer = count, 0, 0, b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while len(self._buffer) < len(buffer) and self.made < self.count:
            self._buffer += tarfile.TarInfo(f"f{self.made}").tobuf(tarfile.USTAR_FORMAT)
            self.made += 1
        n = min(len(buffer), len(self._buffer))
        buffer[:n], self._buffer = self._buffer[:n], self._buffer[n:]
        self.read_bytes += n
        return n


def test_a_million_empty_files_stop_at_the_bound_and_read_no_further(tmp_path):
    bomb = _EmptyFiles(1_000_000)
    (tmp_path / "root").mkdir()
    with pytest.raises(UnpackError, match="'f1000': one member too many; accepted: at most 1000 members"), \
            Target(tmp_path / "root", bounds=Bounds(members=1000)) as target:
        walk(io.BufferedReader(bomb), target)
    assert len(os.listdir(tmp_path / "root")) == 1000
    assert bomb.read_bytes < 2 << 20  # a few MB read of the 512 MB offered
    assert Bounds().members == 1_000_000  # the store's own bound on one layer


@pytest.mark.root
def test_a_bomb_in_a_pulled_or_loaded_layer_stores_nothing(tmp_path):
    from sandbox.images import layout
    from sandbox.images.layers import layer_from_blob
    from sandbox.images.oci import MEDIA_LAYER, Descriptor

    data = archive(*(member(f"f{i}") for i in range(50)))
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    layout.ensure()
    with pytest.raises(UnpackError, match="one member too many"):
        layer_from_blob(io.BytesIO(data), Descriptor(MEDIA_LAYER, digest, len(data)), digest, Bounds(members=10))
    assert not layout.has_blob(digest) and _store_is_clean()
