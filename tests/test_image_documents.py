"""The image store's parsing of untrusted input: references, digests, OCI documents (no root)."""

import io
import json

import pytest

from sandbox import ImageError
from sandbox.images import layout
from sandbox.images.digest import VerifiedReader, digest_bytes, parse_digest
from sandbox.images.oci import ConfigDocument, Descriptor, ImageConfig, Manifest
from sandbox.images.reference import Reference, parse_reference

GOOD = "sha256:" + "a" * 64


def test_references_default_to_latest_and_keep_registry_ports():
    assert parse_reference("busybox") == Reference("busybox", "latest")
    assert parse_reference("team/tool:1.2-rc_3") == Reference("team/tool", "1.2-rc_3")
    assert parse_reference("localhost:5000/tool") == Reference("localhost:5000/tool", "latest")
    assert parse_reference(f"app@{GOOD}") == Reference("app", None, GOOD)
    assert str(parse_reference("app")) == "app:latest"


@pytest.mark.parametrize("bad", ["", "Upper", "a b", "app:", "app:-x", "app:" + "t" * 129, "../x",
                                 "/abs", "app@sha256:../../etc", "app@md5:abc", "-x", "a//b"])
def test_bad_references_are_one_clear_error(bad):
    with pytest.raises(ImageError, match="invalid") as info:
        parse_reference(bad)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("bad", ["sha256:../../../etc/passwd", "sha256:" + "A" * 64, "sha256:abc",
                                 "sha512:" + "a" * 128, "sha256:" + "a" * 64 + "/x", None, 5])
def test_digests_are_validated_before_they_name_a_path(bad):
    with pytest.raises(ImageError, match="invalid digest"):
        parse_digest(bad)
    with pytest.raises(ImageError):
        layout.blob_path(bad)


def test_a_verified_reader_refuses_other_bytes_and_more_bytes():
    data = b"hello"
    ok = VerifiedReader(io.BytesIO(data), digest_bytes(data), 5)
    ok.drain()
    assert ok.verified
    with pytest.raises(ImageError, match="does not match its digest"):
        VerifiedReader(io.BytesIO(b"hellp"), digest_bytes(data), 5).drain()
    with pytest.raises(ImageError, match="larger than"):
        VerifiedReader(io.BytesIO(b"hello!"), digest_bytes(data), 5).drain()
    with pytest.raises(ImageError, match="has 4 bytes"):
        VerifiedReader(io.BytesIO(b"hell"), digest_bytes(b"hell"), 5).drain()


def test_manifests_are_type_checked():
    config = {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": GOOD, "size": 2}
    layer = {"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": GOOD, "size": 1}
    manifest = Manifest.from_json({"schemaVersion": 2, "config": config, "layers": [layer]})
    assert manifest.layers[0] == Descriptor(layer["mediaType"], GOOD, 1)
    bad = [{"schemaVersion": 1, "config": config, "layers": []},
           {"schemaVersion": 2, "config": {**config, "digest": "sha256:../x"}, "layers": []},
           {"schemaVersion": 2, "config": {**config, "size": -1}, "layers": []},
           {"schemaVersion": 2, "config": config, "layers": [{**layer, "mediaType": "text/html"}]},
           {"schemaVersion": 2, "config": config, "layers": "all"}]
    for doc in bad:
        with pytest.raises(ImageError):
            Manifest.from_json(doc)


def test_configs_round_trip_and_refuse_wrong_types():
    config = ImageConfig(env=("A=1", "B=x=y"), entrypoint=("/e",), cmd=("c",), workdir="/w",
                         user="1:2", labels={"k": "v"}, exposed_ports=("80/tcp",))
    doc = ConfigDocument(config, (GOOD,), ({"created_by": "RUN x"},)).to_json()
    back = ConfigDocument.from_json(json.loads(json.dumps(doc)))
    assert back.config == config and back.diff_ids == (GOOD,) and config.env_dict()["B"] == "x=y"
    assert doc["rootfs"] == {"type": "layers", "diff_ids": [GOOD]} and doc["os"] == "linux"
    for change in ({"config": {"Env": "A=1"}}, {"config": {"Cmd": [1]}}, {"rootfs": {"type": "x"}},
                   {"rootfs": {"type": "layers", "diff_ids": ["sha256:../x"]}}, {"history": [1]}):
        with pytest.raises(ImageError):
            ConfigDocument.from_json({**doc, **change})


def test_stored_documents_are_checked_against_their_digest():
    digest, size = layout.put_blob(b'{"a": 1}')
    assert layout.read_document(digest, size) == {"a": 1}
    path = layout.blob_path(digest)
    path.chmod(0o644)
    path.write_bytes(b'{"a": 2}')
    with pytest.raises(ImageError, match="does not match its digest"):
        layout.read_document(digest, size)
    path.unlink()
    with pytest.raises(ImageError, match="missing from the store"):
        layout.read_document(digest, size)
