"""Pull and push against a real registry: Debian's docker-registry (distribution 2.8), plain,
with htpasswd basic auth, and with token auth from tests/token_server.py; skopeo, buildah
and podman as the peers that read what we push and push what we pull.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import stat
import subprocess
import time

import pytest

from sandbox import ImageError, images
from sandbox.images import layout, lookup, registry
from sandbox.images.oci import MEDIA_INDEX
from sandbox.images.registry import progress as events
from sandbox.images.registry.auth import auth_file

from .helpers import REPO, sandbox_cli
from .image_helpers import image_on_busybox, store_is_consistent, tar_layer
from .registry_peers import (
    busybox_rootfs,
    containers,
    docker_registry,
    free_port,
    htpasswd,
    need,
    stop,
    token_auth,
    token_server,
    wait_listening,
)

pytestmark = pytest.mark.usefixtures("needs_root")


@pytest.fixture(scope="module")
def plain():
    with docker_registry() as reg:
        yield reg


class Recorder(list):
    """A progress callback that keeps every event."""

    def __call__(self, event) -> None:
        self.append(event)

    def of(self, kind) -> list:
        return [e for e in self if isinstance(e, kind)]


def _image(tag: str, *extra: bytes) -> images.StoredImage:
    return image_on_busybox(tag, *(extra or (tar_layer(("app/hello.txt", f"hello {tag}\n")),)))


def _requests(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name == "sandbox.images.registry" and "->" not in r.getMessage()
            and not r.getMessage().startswith("token")]


def _skopeo_oci(ref: str, dest) -> dict:
    need("skopeo", "skopeo")
    subprocess.run(["skopeo", "copy", "-q", "--preserve-digests", "--src-tls-verify=false", f"docker://{ref}", f"oci:{dest}:x"],
                   check=True, capture_output=True, timeout=120)
    return json.loads((dest / "index.json").read_text())


# -- round trips with the peers ---------------------------------------------------

def test_we_push_skopeo_reads_it_and_the_digests_match(plain, tmp_path):
    image = _image("roundtrip:1")
    images.tag_image("roundtrip:1", plain.ref("team/roundtrip:1"))
    seen = Recorder()
    digest = registry.push(plain.ref("team/roundtrip:1"), progress=seen)
    assert digest == image.id
    index = _skopeo_oci(plain.ref("team/roundtrip:1"), tmp_path / "oci")
    assert index["manifests"][0]["digest"] == image.id
    blobs = tmp_path / "oci/blobs/sha256"
    for layer in image.layers:  # every layer arrived whole: skopeo checked each digest
        assert (blobs / layer.digest[7:]).stat().st_size == layer.size
    assert seen.of(events.ImageDone)[0].digest == digest


def test_skopeo_pushes_a_buildah_image_we_pull_and_run(plain, tmp_path):
    need("skopeo", "skopeo")
    with containers() as tools:
        rootfs = busybox_rootfs(tmp_path / "rootfs")
        ctr = tools.buildah("from", "scratch").stdout.strip()
        tools.buildah("copy", ctr, str(rootfs), "/")
        tools.buildah("config", "--cmd", "/bin/sh -c 'cat /etc/os-release'", "--env", "BUILT=buildah", ctr)
        tools.buildah("commit", "-q", ctr, "localhost/built:1")
        subprocess.run(["skopeo", "copy", "-q", "--dest-tls-verify=false", f"{tools.storage}localhost/built:1",
                        f"docker://{plain.ref('built:1')}"], check=True, capture_output=True, timeout=120)
    image = registry.pull(plain.ref("built:1"))
    assert image.manifest.layers[0].media_type.endswith("gzip")  # skopeo compressed it; we keep it so
    out = sandbox_cli("run", plain.ref("built:1"))
    assert out.returncode == 0, out.stderr
    assert out.stdout == b"NAME=built-by-buildah\n"
    out = sandbox_cli("run", plain.ref("built:1"), "--", "sh", "-c", "echo $BUILT")
    assert out.stdout == b"buildah\n"
    assert store_is_consistent() == []


def test_a_second_pull_of_a_stored_image_is_one_manifest_request(plain, caplog):
    _image("twice:1")
    images.tag_image("twice:1", plain.ref("twice:1"))
    registry.push(plain.ref("twice:1"))
    images.remove_image(plain.ref("twice:1"))
    images.remove_image("twice:1")
    first = Recorder()
    registry.pull(plain.ref("twice:1"), progress=first)
    assert first.of(events.BlobDone) or first.of(events.BlobSkipped)
    caplog.set_level(logging.DEBUG, logger="sandbox.images.registry")
    caplog.clear()
    again = Recorder()
    image = registry.pull(plain.ref("twice:1"), progress=again)
    assert _requests(caplog) == [f"GET http://{plain.host}/v2/twice/manifests/1"]
    assert [type(e) for e in again] == [events.ImageDone] and again[0].action == "up to date"
    assert image.tags == (plain.ref("twice:1"),)


def test_pull_fetches_only_the_layers_the_store_lacks(plain):
    _image("base-shared:1")
    image = _image("top:1", tar_layer(("top.txt", "top\n")))
    images.tag_image("top:1", plain.ref("top:1"))
    registry.push(plain.ref("top:1"))
    images.remove_image(plain.ref("top:1"))
    images.remove_image("top:1")  # its top layer goes; busybox's stays
    seen = Recorder()
    pulled = registry.pull(plain.ref("top:1"), progress=seen)
    assert pulled.id == image.id
    assert [e.digest for e in seen.of(events.BlobStarted)] == [image.layers[-1].digest]
    assert {e.digest for e in seen.of(events.BlobSkipped)} == {layer.digest for layer in image.layers[:-1]}


def test_push_skips_what_the_registry_has_and_mounts_across_repositories(plain):
    image = _image("mounted:1", tar_layer(("m.bin", os.urandom(4096))))
    images.tag_image("mounted:1", plain.ref("first/repo:1"))
    registry.push(plain.ref("first/repo:1"))
    images.tag_image("mounted:1", plain.ref("first/repo:2"))
    again = Recorder()
    registry.push(plain.ref("first/repo:2"), progress=again)
    assert not again.of(events.BlobStarted)
    assert {e.why for e in again.of(events.BlobSkipped)} == {"already there"}
    images.tag_image("mounted:1", plain.ref("second/repo:1"))
    mounts = Recorder()
    before = plain.requests("PUT /v2/second/repo/blobs/uploads/")
    registry.push(plain.ref("second/repo:1"), progress=mounts)
    assert {e.why for e in mounts.of(events.BlobSkipped)} == {"mounted from first/repo"}
    assert plain.requests("PUT /v2/second/repo/blobs/uploads/") == before  # no upload at all
    assert len(mounts.of(events.BlobSkipped)) == len(image.layers)


def test_a_chunked_upload_arrives_whole(plain, tmp_path):
    image = _image("chunky:1", tar_layer(("big.bin", os.urandom(300_000))))
    images.tag_image("chunky:1", plain.ref("chunky:1"))
    registry.push(plain.ref("chunky:1"), chunk_size=64 << 10)
    assert plain.requests("PATCH /v2/chunky/blobs/uploads/") >= 5
    index = _skopeo_oci(plain.ref("chunky:1"), tmp_path / "oci")
    assert index["manifests"][0]["digest"] == image.id


def _put(reg, path: str, data: bytes, media_type: str) -> None:
    import httpx

    response = httpx.put(f"http://{reg.host}{path}", content=data, headers={"Content-Type": media_type})
    assert response.status_code == 201, response.text


def _index(entries: list[tuple[str, str, str, int]]) -> bytes:
    return json.dumps({"schemaVersion": 2, "mediaType": MEDIA_INDEX, "manifests": [
        {"mediaType": media, "digest": digest, "size": size, "platform": {"os": "linux", "architecture": arch}}
        for arch, media, digest, size in entries]}).encode()


def test_an_index_gives_this_hosts_platform_or_says_which_there_are(plain):
    from sandbox.images.registry.manifests import host_platform

    ours = _image("multi-ours:1")
    other = _image("multi-other:1", tar_layer(("other.txt", "other\n")))
    for tag in ("multi-ours:1", "multi-other:1"):
        images.tag_image(tag, plain.ref(tag.replace(":", "-x:")))
        registry.push(plain.ref(tag.replace(":", "-x:")))
        images.tag_image(tag, plain.ref(f"multi:{tag.split(':')[0]}"))
        registry.push(plain.ref(f"multi:{tag.split(':')[0]}"))
    arch = host_platform()[1]
    media = ours.manifest.media_type
    _put(plain, "/v2/multi/manifests/both", _index([("s390x", media, other.id, other.size),
                                                     (arch, media, ours.id, ours.size)]), MEDIA_INDEX)
    assert registry.pull(plain.ref("multi:both")).id == ours.id
    _put(plain, "/v2/multi/manifests/foreign", _index([("s390x", media, other.id, other.size)]), MEDIA_INDEX)
    with pytest.raises(ImageError, match=rf"multi:foreign has no image for linux/{arch} \(it has: linux/s390x\)"):
        registry.pull(plain.ref("multi:foreign"))
    with pytest.raises(ImageError):
        lookup(plain.ref("multi:foreign"))


# -- errors a user can act on -----------------------------------------------------

def test_a_build_from_a_registry_reference_pulls_it_first(plain, tmp_path):
    _image("frombase:1")
    images.tag_image("frombase:1", plain.ref("frombase:1"))
    registry.push(plain.ref("frombase:1"))
    images.remove_image(plain.ref("frombase:1"))
    images.remove_image("frombase:1")
    (tmp_path / "Sandboxfile").write_text(
        f"FROM {plain.ref('frombase:1')}\nRUN cp /app/hello.txt /seen\n")
    try:
        out = sandbox_cli("build", "-t", "fromreg:1", str(tmp_path), timeout=300)
        assert out.returncode == 0, out.stderr
        seen = sandbox_cli("run", "fromreg:1", "--", "cat", "/seen")
        assert seen.stdout == b"hello frombase:1\n"
        assert lookup(plain.ref("frombase:1")).tags == (plain.ref("frombase:1"),)
    finally:
        for ref in ("fromreg:1", plain.ref("frombase:1")):
            images.remove_image(ref, force=True)
        images.prune()
    assert store_is_consistent() == []


def test_unknown_repository_and_tag_are_named(plain):
    _image("known:1")
    images.tag_image("known:1", plain.ref("known:1"))
    registry.push(plain.ref("known:1"))
    with pytest.raises(ImageError, match=r"no repository 'nothing-here' on registry"):
        registry.pull(plain.ref("nothing-here:1"))
    with pytest.raises(ImageError, match=r"no tag '2' in known on registry .* \(tags: 1\)"):
        registry.pull(plain.ref("known:2"))
    out = sandbox_cli("pull", plain.ref("known:2"))
    assert out.returncode == 125 and out.stderr.count(b"\n") == 1, out.stderr


def test_a_registry_that_is_down_or_answers_garbage(tmp_path):
    port = free_port()
    with pytest.raises(ImageError, match=rf"cannot reach registry 127.0.0.1:{port} .*Connection refused"):
        registry.pull(f"127.0.0.1:{port}/x:1")
    garbage = subprocess.Popen(["python3", "-m", "http.server", str(port), "--bind", "127.0.0.2",
                                "--directory", str(tmp_path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_listening(port, "127.0.0.2", garbage)
        (tmp_path / "v2" / "x" / "manifests").mkdir(parents=True)
        (tmp_path / "v2" / "x" / "manifests" / "1").write_text("<html>not a manifest</html>")
        with pytest.raises(ImageError, match=r"cannot speak HTTPS to registry 127.0.0.2:\d+.*--insecure-registry"):
            registry.pull(f"127.0.0.2:{port}/x:1")
        with pytest.raises(ImageError, match=r"is not valid JSON .*the registry answered garbage"):
            registry.pull(f"127.0.0.2:{port}/x:1", insecure=[f"127.0.0.2:{port}"])
        out = sandbox_cli("pull", f"127.0.0.2:{port}/x:1", "--insecure-registry", "127.0.0.2")
        assert out.returncode == 125 and out.stderr.count(b"\n") == 1, out.stderr
    finally:
        stop(garbage)
    assert store_is_consistent() == []


def test_a_blob_that_does_not_match_its_digest_is_refused_and_not_stored(plain):
    image = _image("tampered:1", tar_layer(("t.bin", os.urandom(8192))))
    images.tag_image("tampered:1", plain.ref("tampered:1"))
    registry.push(plain.ref("tampered:1"))
    images.remove_image(plain.ref("tampered:1"))
    images.remove_image("tampered:1")
    top = image.layers[-1]
    blob = plain.blob_file(top.digest)
    data = bytearray(blob.read_bytes())
    data[600] ^= 0xFF  # inside the first member's content: still a tar
    blob.write_bytes(bytes(data))
    with pytest.raises(ImageError, match=rf"{top.digest} does not match its digest"):
        registry.pull(plain.ref("tampered:1"))
    assert not layout.has_blob(top.digest)
    assert not (layout.root() / "layers" / top.diff_id[7:]).exists()
    with pytest.raises(ImageError):
        lookup(plain.ref("tampered:1"))
    assert store_is_consistent() == []


def test_an_interrupted_pull_leaves_no_half_image_and_restarts_cleanly(plain):
    big = _image("interrupted:1", tar_layer(*((f"big{i}.bin", os.urandom(4 << 20)) for i in range(6))))
    images.tag_image("interrupted:1", plain.ref("interrupted:1"))
    registry.push(plain.ref("interrupted:1"))
    images.remove_image(plain.ref("interrupted:1"))
    images.remove_image("interrupted:1")
    env = dict(os.environ, PYTHONPATH=REPO)
    proc = subprocess.Popen(["python3", "-c", "import sys; from sandbox.images import registry; "
                             "registry.pull(sys.argv[1])", plain.ref("interrupted:1")], env=env)
    deadline = time.monotonic() + 60
    work = layout.root() / "tmp"
    while not any("-blob" in n for n in os.listdir(work)) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    with pytest.raises(ImageError):
        lookup(plain.ref("interrupted:1"))
    assert sandbox_cli("gc").returncode == 0  # removes the dead pull's work dir
    assert os.listdir(work) == []
    assert registry.pull(plain.ref("interrupted:1")).id == big.id
    assert store_is_consistent() == []


def test_a_disk_that_fills_during_a_pull_is_named_and_leaves_nothing(plain, tmp_path, monkeypatch):
    _image("filler:1", tar_layer(("fill.bin", os.urandom(3 << 20))))
    images.tag_image("filler:1", plain.ref("filler:1"))
    registry.push(plain.ref("filler:1"))
    small = tmp_path / "small"
    small.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(small)], check=True)
    try:
        monkeypatch.setenv("SANDBOX_STATE_DIR", str(small))
        with pytest.raises(ImageError, match=r"is full: blob sha256:[0-9a-f]+ \(\d+ bytes\) did not fit"):
            registry.pull(plain.ref("filler:1"))
        assert os.listdir(small / "images" / "tmp") == []
        assert json.loads((small / "images" / "index.json").read_text())["manifests"] == []
    finally:
        subprocess.run(["umount", str(small)], check=True)


def test_many_sandboxes_asking_at_once_make_one_download(plain):
    image = _image("once:1", tar_layer(("once.txt", "once\n")))
    images.tag_image("once:1", plain.ref("once:1"))
    registry.push(plain.ref("once:1"))
    images.remove_image(plain.ref("once:1"))
    images.remove_image("once:1")
    top = image.layers[-1].digest
    env = dict(os.environ, PYTHONPATH=REPO)
    runs = [subprocess.Popen(["python3", "-m", "sandbox", "run", plain.ref("once:1"), "--", "cat", "/once.txt"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env) for _ in range(4)]
    outs = [p.communicate(timeout=120) for p in runs]
    assert [p.returncode for p in runs] == [0] * 4, outs
    assert all(out == b"once\n" for out, _ in outs)
    assert plain.requests(f"GET /v2/once/blobs/{top}") == 1
    assert plain.requests("GET /v2/once/manifests/1") == 1


def test_the_engine_pulls_on_first_use(plain):
    """What job files and the pytest marker go through: images.get of a registry reference."""
    _image("engine-first:1")
    images.tag_image("engine-first:1", plain.ref("engine/first:1"))
    registry.push(plain.ref("engine/first:1"))
    images.remove_image(plain.ref("engine/first:1"))
    image = images.get(plain.ref("engine/first:1"))
    assert os.path.isfile(os.path.join(image.layers[0], "app/hello.txt"))
    assert images.pull_if_missing(plain.ref("engine/first:1")).id == image.id
    with pytest.raises(ImageError, match="image 'not-stored:1' not found"):
        images.get("not-stored:1")  # a local name is never looked for in a registry


# -- auth ---------------------------------------------------------------------------

@pytest.fixture
def private(tmp_path):
    htpasswd(tmp_path / "htpasswd", "alice", "s3cret-pw")
    with docker_registry({"htpasswd": {"realm": "test", "path": str(tmp_path / "htpasswd")}}) as reg:
        yield reg
    auth_file().unlink(missing_ok=True)


def test_basic_auth_login_from_stdin_kept_for_root_only(private, caplog, tmp_path, monkeypatch):
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "no-docker"))
    _image("private:1")
    images.tag_image("private:1", private.ref("private:1"))
    with pytest.raises(ImageError, match=rf"registry {private.host} refused access to .*\(tried: anonymous\)"):
        registry.push(private.ref("private:1"))
    out = sandbox_cli("login", "-u", "alice", private.host, input=b"wrong-pw\n")
    assert out.returncode == 125 and b"refused" in out.stderr and b"wrong-pw" not in out.stderr
    out = sandbox_cli("login", "-u", "alice", private.host, input=b"s3cret-pw\n")
    assert out.returncode == 0, out.stderr
    assert stat.S_IMODE(auth_file().stat().st_mode) == 0o600
    caplog.set_level(logging.DEBUG)
    registry.push(private.ref("private:1"))
    images.remove_image(private.ref("private:1"))
    assert registry.pull(private.ref("private:1")).tags == (private.ref("private:1"),)
    assert "s3cret" not in caplog.text and "czNjcmV0" not in caplog.text
    assert sandbox_cli("logout", private.host).returncode == 0
    assert "s3cret" not in auth_file().read_text()


def test_docker_config_credentials_are_used_and_named_when_refused(private, tmp_path, monkeypatch):
    import base64

    _image("dockercfg:1")
    images.tag_image("dockercfg:1", private.ref("dockercfg:1"))
    config = tmp_path / "docker"
    config.mkdir()
    monkeypatch.setenv("DOCKER_CONFIG", str(config))
    wrong = base64.b64encode(b"alice:not-it").decode()
    (config / "config.json").write_text(json.dumps({"auths": {private.host: {"auth": wrong}}}))
    with pytest.raises(ImageError) as refused:
        registry.push(private.ref("dockercfg:1"))
    assert f"(tried: anonymous, user 'alice' from {config}/config.json)" in str(refused.value)
    assert "not-it" not in str(refused.value)
    right = base64.b64encode(b"alice:s3cret-pw").decode()
    (config / "config.json").write_text(json.dumps({"auths": {f"https://{private.host}": {"auth": right}}}))
    assert registry.push(private.ref("dockercfg:1")).startswith("sha256:")


def test_the_token_flow_with_a_token_per_scope_and_one_reauth(tmp_path):
    users = {"alice": ["s3cret-pw", "pull,push"], "reader": ["read-pw", "pull"]}
    with token_server(users) as tokens, docker_registry(token_auth(tokens)) as reg:
        _image("tokened:1")
        images.tag_image("tokened:1", reg.ref("team/tokened:1"))
        from sandbox.images.registry.auth import store_credential

        store_credential(reg.host, "alice", "s3cret-pw")
        try:
            registry.push(reg.ref("team/tokened:1"))
            issued = tokens.issued()
            assert [i["scopes"] for i in issued] == [["repository:team/tokened:pull,push"]]  # cached per scope
            images.remove_image(reg.ref("team/tokened:1"))
            registry.pull(reg.ref("team/tokened:1"))
            assert tokens.issued()[-1] == {"user": "alice", "scopes": ["repository:team/tokened:pull"]}
            store_credential(reg.host, "reader", "read-pw")
            images.tag_image("tokened:1", reg.ref("team/other:1"))
            with pytest.raises(ImageError, match=r"refused access to .*\(tried: user 'reader' from "):
                registry.push(reg.ref("team/other:1"))
            assert registry.pull(reg.ref("team/tokened:1")).id  # pull is granted to reader
        finally:
            auth_file().unlink(missing_ok=True)


def test_the_cli_shows_plain_progress_lines_and_a_summary(plain):
    image = _image("shown:1")
    images.tag_image("shown:1", plain.ref("shown:1"))
    out = sandbox_cli("push", plain.ref("shown:1"))
    assert out.returncode == 0, out.stderr
    lines = out.stderr.decode().splitlines()
    assert lines[-2:] == [f"{plain.ref('shown:1')}: pushed", f"Digest: {image.id}"]
    assert any(line.endswith(": done") for line in lines)
    out = sandbox_cli("push", "-q", plain.ref("shown:1"))
    assert out.stdout.decode().strip() == image.id and out.stderr == b""


def test_a_push_by_digest_is_refused_in_one_line():
    out = sandbox_cli("push", "127.0.0.1:1/x@sha256:" + "0" * 64)
    assert out.returncode == 125 and b"a push names a tag, not a digest" in out.stderr




def test_a_pull_by_digest_is_pinned_and_checked(plain):
    image = _image("pinned:1")
    images.tag_image("pinned:1", plain.ref("pinned:1"))
    registry.push(plain.ref("pinned:1"))
    images.remove_image(plain.ref("pinned:1"))  # else the stored tag already is that digest
    ref = plain.ref(f"pinned@{image.id}")
    assert registry.pull(ref).id == image.id
    out = sandbox_cli("run", ref, "--", "cat", "/app/hello.txt")
    assert out.returncode == 0 and out.stdout == b"hello pinned:1\n", out.stderr
    assert b"<none>" in sandbox_cli("images").stdout
    with pytest.raises(ImageError, match=r"no manifest 'sha256:0{64}' in pinned"):
        registry.pull(plain.ref("pinned@sha256:" + "0" * 64))
