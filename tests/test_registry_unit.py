"""The registry client's pieces that need no registry: names, challenges, credentials,
redaction, platform choice, progress rendering."""

from __future__ import annotations

import base64
import io
import json
import os
import stat

import pytest

from sandbox import ImageError
from sandbox.images.oci import MEDIA_INDEX, MEDIA_MANIFEST
from sandbox.images.registry import auth, names, progress
from sandbox.images.registry.client import redact_url
from sandbox.images.registry.manifests import choose_platform, host_platform


def test_which_registry_a_reference_names():
    ref = names.resolve("127.0.0.1:5000/team/tool:1")
    assert (ref.registry, ref.repository, ref.tag, ref.selector) == ("127.0.0.1:5000", "team/tool", "1", "1")
    ref = names.resolve("alpine")
    assert (ref.registry, ref.api_host, ref.repository, ref.tag) == (
        "docker.io", "registry-1.docker.io", "library/alpine", "latest")
    assert names.resolve("team/tool").repository == "team/tool"
    ref = names.resolve("localhost/x@sha256:" + "a" * 64)
    assert (ref.registry, ref.selector, str(ref)) == ("localhost", "sha256:" + "a" * 64, "localhost/x@sha256:" + "a" * 64)
    assert names.names_registry("registry.example/x") and not names.names_registry("app")
    with pytest.raises(ImageError, match="invalid image name"):
        names.resolve("UPPER/Case")


def test_plain_http_only_for_loopback_and_listed_hosts(monkeypatch):
    monkeypatch.delenv(names.INSECURE_ENV, raising=False)
    assert names.scheme_for("127.0.0.1:5000", names.insecure_hosts()) == "http"
    assert names.scheme_for("localhost", set()) == "http"
    assert names.scheme_for("registry.example:5000", names.insecure_hosts()) == "https"
    assert names.scheme_for("registry.example:5000", names.insecure_hosts(["registry.example"])) == "http"
    monkeypatch.setenv(names.INSECURE_ENV, "a.example:1, b.example")
    assert names.scheme_for("a.example:1", names.insecure_hosts()) == "http"
    assert names.scheme_for("a.example:2", names.insecure_hosts()) == "https"
    assert names.scheme_for("b.example:9", names.insecure_hosts()) == "http"


def test_challenges_are_parsed_with_quotes_and_commas():
    c = auth.parse_challenge('Bearer realm="https://auth.example/token",service="registry.example",'
                             'scope="repository:a/b:pull,push",error="insufficient_scope"')
    assert c.scheme == "bearer" and c.params == {
        "realm": "https://auth.example/token", "service": "registry.example",
        "scope": "repository:a/b:pull,push", "error": "insufficient_scope"}
    assert auth.parse_challenge('Basic realm="x \\"quoted\\""').params == {"realm": 'x "quoted"'}
    assert auth.parse_challenge("") is None


def test_urls_are_logged_without_their_secrets():
    url = "http://user:pw@r.example/v2/a/blobs/uploads/u?_state=SIGNED&digest=sha256:ab"
    shown = redact_url(url)
    assert "SIGNED" not in shown and "pw" not in shown and "digest=sha256:ab" in shown


def test_credentials_from_docker_config_and_helpers(tmp_path, monkeypatch):
    monkeypatch.setenv("SANDBOX_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker"))
    (tmp_path / "docker").mkdir()
    secret = base64.b64encode(b"bob:hunter2").decode()
    (tmp_path / "docker/config.json").write_text(json.dumps({
        "auths": {"https://index.docker.io/v1/": {"auth": secret}}, "credHelpers": {"r.example": "fake"}}))
    [cred] = auth.credentials_for("docker.io")
    assert (cred.username, cred.secret) == ("bob", "hunter2") and "hunter2" not in repr(cred)
    assert cred.describe() == f"user 'bob' from {tmp_path}/docker/config.json"
    helper = tmp_path / "bin/docker-credential-fake"
    helper.parent.mkdir()
    helper.write_text('#!/bin/sh\nread r\n[ "$r" = r.example ] && echo \'{"Username":"h","Secret":"s"}\'\n')
    helper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{helper.parent}:{os.environ['PATH']}")
    [cred] = auth.credentials_for("r.example")
    assert (cred.username, cred.secret) == ("h", "s") and "docker-credential-fake" in cred.source
    assert auth.credentials_for("other.example") == []


def test_login_keeps_credentials_for_root_only_and_first(tmp_path, monkeypatch):
    monkeypatch.setenv("SANDBOX_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker"))
    path = auth.store_credential("r.example:5000", "alice", "pw1")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [c.username for c in auth.credentials_for("r.example:5000")] == ["alice"]
    assert auth.forget_credential("r.example:5000") and not auth.forget_credential("r.example:5000")
    path.write_text("{not json")
    with pytest.raises(ImageError, match=r"cannot read credentials from .*auth\.json"):
        auth.credentials_for("r.example:5000")


def _entry(arch: str, digest_char: str, variant: str = "") -> dict:
    platform = {"os": "linux", "architecture": arch, **({"variant": variant} if variant else {})}
    return {"mediaType": MEDIA_MANIFEST, "digest": "sha256:" + digest_char * 64, "size": 1, "platform": platform}


def test_an_index_entry_for_this_platform_is_chosen():
    arch = host_platform()[1]
    index = {"mediaType": MEDIA_INDEX, "manifests": [_entry("s390x", "a"), _entry(arch, "b"),
                                                    {**_entry("unknown", "c"), "platform": {"os": "unknown"}}]}
    assert choose_platform(index, "x").digest == "sha256:" + "b" * 64
    with pytest.raises(ImageError, match=r"x has no image for linux/.* \(it has: linux/s390x\)"):
        choose_platform({"manifests": [_entry("s390x", "a")]}, "x")


def test_progress_is_plain_lines_off_a_terminal_and_bars_on_one():
    digest = "sha256:" + "ab" * 32
    events = [progress.BlobStarted(digest, 2048, "layer"), progress.BlobAdvanced(digest, 1024, 2048),
              progress.BlobDone(digest, 2048), progress.ImageDone("r/x:1", "sha256:" + "c" * 64, "pulled")]
    plain = io.StringIO()
    show = progress.for_stream(plain)
    for event in events:
        show(event)
    assert plain.getvalue().splitlines() == ["abababababab: copying layer (2 KiB)", "abababababab: done",
                                             "r/x:1: pulled", "Digest: sha256:" + "c" * 64]

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    term = Terminal()
    show = progress.for_stream(term)
    assert isinstance(show, progress.TerminalProgress)
    show(events[0])
    show.last = 0.0
    show(events[1])
    assert "[===============>" in term.getvalue() and "1 KiB/2 KiB" in term.getvalue()
    assert "\x1b[1A" in term.getvalue()  # the layer's line is redrawn in place
