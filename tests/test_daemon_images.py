"""Image build, pull and push through the daemon: the API (httpx), and the CLI both ways.

A daemon of the test's own on a private socket (and port, for tokens);
pull and push go to Debian's docker-registry on loopback, one per side when
the two runs must meet the same registry state.
"""

from __future__ import annotations

import io
import json
import os
import re
import tarfile

import httpx
import pytest

from sandbox import images

from .daemon_support import Daemon, daemon, local_cli, tcp_daemon  # noqa: F401 - fixtures
from .helpers import wait_for
from .image_helpers import image_on_busybox, tar_layer
from .registry_peers import docker_registry
from .test_daemon_cli import times

pytestmark = pytest.mark.root

SANDBOXFILE = "FROM busybox\nCOPY a.txt /a.txt\nRUN cat /a.txt && echo built\n"


def context_tar(files: dict[str, str], *, extra: tarfile.TarInfo | None = None) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
        if extra is not None:
            tar.addfile(extra, io.BytesIO(b"x" * extra.size))
    return buf.getvalue()


def lines(response) -> list[dict]:
    assert response.headers["content-type"] == "application/x-ndjson", response.text
    return [json.loads(line) for line in response.text.splitlines() if line]


def post_build(client, files: dict[str, str], **params) -> object:
    return client.post("/v1/images/build", params=params,
                       files={"context": ("c.tar", context_tar(files), "application/x-tar")})


def test_build_streams_progress_then_the_image(daemon):
    with daemon.unix(timeout=120) as c:
        r = post_build(c, {"Sandboxfile": SANDBOXFILE, "a.txt": "from the context\n"},
                       tag=["apibuild:1"], no_cache="true")
        assert r.status_code == 200
        got = lines(r)
        progress = [x["progress"] for x in got if "progress" in x]
        assert progress[0] == "[1/3] FROM busybox"
        assert "      from the context" in progress and "      built" in progress
        result = got[-1]["result"]
        assert result["tags"] == ["apibuild:1"] and progress[-1].startswith(f"built {result['id']}")
        assert c.get("/v1/images/apibuild:1").status_code == 200
        assert c.delete("/v1/images/apibuild:1").status_code == 200


def test_build_errors_are_one_answer_with_the_clis_text(daemon):
    with daemon.unix(timeout=120) as c:
        r = post_build(c, {"Sandboxfile": "FROM busybox\nBOGUS x\n"})
        assert r.status_code == 400 and r.json()["exit_status"] == 125
        assert r.json()["message"].startswith("Sandboxfile:2: ")
        assert r.json()["message"].endswith("\n    2 | BOGUS x")
        r = post_build(c, {"Dockerfile": "FROM busybox\n"}, file="../../etc/passwd")
        assert r.status_code == 400 and r.json()["field"] == "file"
        r = post_build(c, {"Sandboxfile": "FROM busybox\nRUN echo last words; exit 3\n"})
        assert r.status_code == 200
        error = lines(r)[-1]["error"]
        assert error["exit_status"] == 3 and error["tail"] == ["last words"]
        assert error["kind"] == "BuildStepFailed"
        r = c.post("/v1/images/build", params={"build_arg": "nokey"},
                   files={"context": ("c.tar", context_tar({}), "application/x-tar")})
        assert r.status_code == 400 and r.json()["field"] == "build_arg"


def test_a_context_tar_that_escapes_is_refused_and_leaves_nothing(daemon):
    escape = tarfile.TarInfo("../escaped.txt")
    escape.size = 3
    buf = context_tar({"Sandboxfile": "FROM busybox\n"}, extra=escape)
    with daemon.unix() as c:
        r = c.post("/v1/images/build", files={"context": ("c.tar", buf, "application/x-tar")})
        assert r.status_code == 400, r.text
        assert "escaped.txt" in r.json()["message"]
        r = c.post("/v1/images/build", files={"context": ("c.tar", b"not a tar", "application/x-tar")})
        assert r.status_code == 400 and r.json()["message"]
    tmp = images.layout.root() / "tmp"
    left = [p for p in tmp.iterdir() if p.name.endswith("-context")] if tmp.exists() else []
    assert left == []


def test_scopes(tcp_daemon):
    reader = tcp_daemon.token("reader", "read")
    builder = tcp_daemon.token("builder", "images")
    with tcp_daemon.tcp(reader) as c:
        for path in ("/v1/images/pull", "/v1/images/push"):
            r = c.post(path, params={"ref": "nope:1"})
            assert r.status_code == 403 and "lacks the scope 'images'" in r.json()["message"]
        assert post_build(c, {"Sandboxfile": "FROM busybox\n"}).status_code == 403
    with tcp_daemon.tcp(builder) as c:
        r = c.post("/v1/images/push", params={"ref": "127.0.0.1:1/nope:1"})
        assert r.status_code == 404 and r.json()["kind"] == "ImageNotFound"


def varying(data: bytes) -> bytes:
    """Times and ids (a build's image id has its creation time in it) blanked."""
    return times(re.sub(rb"sha256:[0-9a-f]{64}", b"<digest>", data))


def same(daemon, *args: str, normalize=varying):
    here = local_cli(*args)
    there = daemon.cli(*args)
    assert (there.returncode, normalize(there.stdout), normalize(there.stderr)) == \
        (here.returncode, normalize(here.stdout), normalize(here.stderr)), (args, here, there)
    return here


def test_cli_build_both_ways(daemon, tmp_path):
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "a.txt").write_text("from the context\n")
    (ctx / "Sandboxfile").write_text(SANDBOXFILE)
    try:
        r = same(daemon, "build", "--no-cache", "-t", "clibuild:1", str(ctx))
        assert r.returncode == 0 and b"      built\n" in r.stdout
        r = same(daemon, "build", "-q", "-t", "clibuild:1", str(ctx))
        assert r.returncode == 0 and len(r.stdout.split()) == 1
        (tmp_path / "Failing").write_text("FROM busybox\nRUN echo last words; exit 3\n")
        r = same(daemon, "build", "-f", str(tmp_path / "Failing"), str(ctx))
        assert r.returncode == 3 and b"  last words\n------\nsandbox: error:" in r.stderr
        (ctx / "Sandboxfile").write_text("FROM busybox\nCOPY missing.txt /\n")
        assert same(daemon, "build", str(ctx)).returncode == 125
        (ctx / "Bad").write_text("FROM busybox\nBOGUS x\n")
        r = same(daemon, "build", "-f", str(ctx / "Bad"), str(ctx))
        assert r.returncode == 125 and b"|" in r.stderr
        assert same(daemon, "build", str(tmp_path / "nowhere")).returncode == 125
        assert same(daemon, "build", "-f", str(ctx / "absent"), str(ctx)).returncode == 125
    finally:
        local_cli("rmi", "clibuild:1")


def test_cli_push_and_pull_both_ways(daemon):
    image = image_on_busybox("dpush:1", tar_layer(("app/hello.txt", "hello\n")))
    with docker_registry() as here_reg, docker_registry() as there_reg:
        def hosts(data: bytes) -> bytes:
            for reg in (here_reg, there_reg):
                data = data.replace(reg.host.encode(), b"REGISTRY")
            return data

        for reg in (here_reg, there_reg):
            images.tag_image("dpush:1", reg.ref("dpush:1"))
        try:
            here = local_cli("push", here_reg.ref("dpush:1"))
            there = daemon.cli("push", there_reg.ref("dpush:1"))
            assert (there.returncode, hosts(there.stdout), hosts(there.stderr)) == \
                (here.returncode, hosts(here.stdout), hosts(here.stderr)) and here.returncode == 0
            assert there.stderr.decode().splitlines()[-1] == f"Digest: {image.id}"
            out = daemon.cli("push", "-q", there_reg.ref("dpush:1"))
            assert out.stdout.decode().strip() == image.id and out.stderr == b""
            for args in (("pull", here_reg.ref("dpush:1")), ("pull", "-q", here_reg.ref("dpush:1"))):
                images.remove_image(here_reg.ref("dpush:1"))
                here = local_cli(*args)
                images.remove_image(here_reg.ref("dpush:1"))
                there = daemon.cli(*args)
                assert (there.returncode, there.stdout, there.stderr) == \
                    (here.returncode, here.stdout, here.stderr) and here.returncode == 0
            assert same(daemon, "pull", here_reg.ref("dpush:404")).returncode == 125
            assert same(daemon, "push", here_reg.ref("nothing:1")).returncode == 125
        finally:
            for ref in ("dpush:1", here_reg.ref("dpush:1"), there_reg.ref("dpush:1")):
                if images.get(ref):
                    images.remove_image(ref)


def _build_sandboxes() -> list[str]:
    """The state dirs of live sandboxes (the build's RUN step, while it runs)."""
    from sandbox.state import sandboxes_dir

    try:
        return os.listdir(sandboxes_dir())
    except FileNotFoundError:
        return []


def test_a_client_that_goes_away_cancels_its_build(daemon):
    files = {"Sandboxfile": "FROM busybox\nRUN echo step-one > /one\n"
                            "RUN echo started && sleep 120 && touch /two\n"}
    transport = httpx.HTTPTransport(uds=daemon.socket)
    with httpx.Client(transport=transport, base_url="http://daemon", timeout=60) as c, \
            c.stream("POST", "/v1/images/build", params={"tag": "cancelled:1", "no_cache": "true"},
                     files={"context": ("c.tar", context_tar(files), "application/x-tar")}) as r:
        assert r.status_code == 200
        for line in r.iter_lines():  # leaving this loop closes the connection (httpx)
            if line == '{"progress": "      started"}':
                assert _build_sandboxes()  # the step runs
                break
    # the client is gone: the daemon kills the running step and ends the build, tagging nothing
    wait_for(lambda: not _build_sandboxes(), timeout=30)
    work = images.layout.root() / "tmp"
    wait_for(lambda: not any(p.name.endswith(("-build", "-context")) for p in work.iterdir()),
             timeout=30)
    with daemon.unix() as c:
        assert not [i for i in c.get("/v1/images").json() if i["name"] == "cancelled"]
        assert c.get("/v1/images/cancelled:1").status_code == 404
    assert "cancelling the work" in daemon.log.read_text()
    # the daemon still builds, and the step that was not finished runs again (nothing half-kept)
    with daemon.unix(timeout=120) as c:
        r = post_build(c, {"Sandboxfile": "FROM busybox\nRUN echo step-one > /one\nRUN echo fine\n"},
                       tag=["after-cancel:1"])
        assert "result" in lines(r)[-1], r.text
        assert c.delete("/v1/images/after-cancel:1").status_code == 200
