"""Tokens and scopes on the daemon's TCP listener: no token is 401, a token sees only its own."""

from __future__ import annotations

import pytest

from .daemon_support import tcp_daemon, wait_status  # noqa: F401 - fixture

pytestmark = pytest.mark.root

SLEEP = {"image": "busybox", "command": ["sleep", "60"]}


def test_tcp_needs_a_token(tcp_daemon):
    with tcp_daemon.tcp() as anonymous:
        for method, path in (("GET", "/v1/sandboxes"), ("GET", "/v1/jobs"), ("GET", "/v1/info"),
                             ("POST", "/v1/sandboxes"), ("GET", "/v1/images"),
                             ("GET", "/v1/health"), ("GET", "/v1/openapi.json")):
            r = anonymous.request(method, path, json=SLEEP if method == "POST" else None)
            assert r.status_code == 401, (method, path, r.text)
            assert r.headers["www-authenticate"].startswith("Bearer")
    with tcp_daemon.tcp("sbx_not-a-token") as forged:
        assert forged.get("/v1/sandboxes").status_code == 401


def test_tokens_are_stored_hashed(tcp_daemon):
    secret = tcp_daemon.token("ci", "jobs")
    stored = (tcp_daemon.env["SANDBOX_STATE_DIR"] + "/daemon/tokens.json")
    with open(stored) as f:
        text = f.read()
    assert secret not in text and '"ci"' in text
    with tcp_daemon.tcp(secret) as c:
        assert c.get("/v1/jobs").status_code == 200


def test_a_student_cannot_see_or_kill_another_students_sandbox(tcp_daemon):
    alice, bob = tcp_daemon.token("alice", "run"), tcp_daemon.token("bob", "run")
    admin = tcp_daemon.token("teacher", "admin")
    with tcp_daemon.tcp(alice) as a, tcp_daemon.tcp(bob) as b, tcp_daemon.tcp(admin) as t:
        mine = a.post("/v1/sandboxes", params={"start": "true"}, json=SLEEP).json()["id"]
        assert [s["id"] for s in a.get("/v1/sandboxes").json()] == [mine]
        assert b.get("/v1/sandboxes").json() == []
        for method, path in (("GET", ""), ("POST", "/kill"), ("POST", "/stop"), ("DELETE", ""),
                             ("GET", "/logs"), ("GET", "/stats"), ("POST", "/wait")):
            r = b.request(method, f"/v1/sandboxes/{mine}{path}")
            assert r.status_code == 404, (method, path, r.text)
        assert a.get(f"/v1/sandboxes/{mine}").json()["owner"] == "alice"
        assert [s["id"] for s in t.get("/v1/sandboxes").json()] == [mine]
        assert t.delete(f"/v1/sandboxes/{mine}", params={"force": "true"}).json() == {"id": mine}
        for method, path in (("GET", "/stats"), ("POST", "/resize?rows=9&cols=9")):
            r = t.request(method, f"/v1/sandboxes/{mine}{path}")  # gone: 404, not "not made here"
            assert r.status_code == 404 and "no such sandbox" in r.json()["message"], (path, r.text)


def test_detached_sandboxes_and_execs_are_their_makers_own(tcp_daemon):
    """A detached sandbox (a supervisor's) and an exec are seen and acted on only by the token
    that made them, and by admins; to another token they do not exist."""
    alice, bob = tcp_daemon.token("alice", "run", "read"), tcp_daemon.token("bob", "run", "read")
    admin = tcp_daemon.token("teacher", "admin")
    with tcp_daemon.tcp(alice) as a, tcp_daemon.tcp(bob) as b, tcp_daemon.tcp(admin) as t:
        made = a.post("/v1/sandboxes", params={"start": "true", "detach": "true"}, json=SLEEP)
        assert made.status_code == 201, made.text
        mine = made.json()["id"]
        try:
            _only_alices(a, b, t, mine)
        finally:
            t.delete(f"/v1/sandboxes/{mine}", params={"force": "true"})


def _only_alices(a, b, t, mine: str) -> None:
    """What alice made is hers alone (bob gets 404), and the admin's to see."""
    assert [(s["id"], s["owner"]) for s in a.get("/v1/sandboxes").json()] == [(mine, "alice")]
    assert b.get("/v1/sandboxes", params={"all": "true"}).json() == []
    exec_id = a.post(f"/v1/sandboxes/{mine}/exec", json={"command": ["true"]}).json()["id"]
    for method, path in (("GET", ""), ("POST", "/kill"), ("POST", "/stop"), ("DELETE", ""),
                         ("POST", "/start"), ("POST", "/restart"), ("GET", "/logs"),
                         ("POST", "/wait")):
        r = b.request(method, f"/v1/sandboxes/{mine}{path}")
        assert r.status_code == 404, (method, path, r.text)
    assert b.post(f"/v1/sandboxes/{mine}/exec", json={"command": ["true"]}).status_code == 404
    assert b.get(f"/v1/execs/{exec_id}").status_code == 404
    found = a.get(f"/v1/execs/{exec_id}").json()
    assert (found["status"], found["sandbox"], found["owner"]) == ("created", mine, "alice")
    assert [e["id"] for e in a.get(f"/v1/sandboxes/{mine}").json()["execs"]] == [exec_id]
    assert a.get(f"/v1/sandboxes/{mine}").json()["detached"]["state"] == "running"
    assert [s["id"] for s in t.get("/v1/sandboxes").json()] == [mine]
    assert a.post(f"/v1/sandboxes/{mine}/stop", params={"t": 0}).status_code == 204
    assert a.post(f"/v1/sandboxes/{mine}/wait").json()["exit_code"] == 137
    assert a.delete(f"/v1/sandboxes/{mine}").json() == {"id": mine}
    assert a.get(f"/v1/sandboxes/{mine}").status_code == 404


def test_scopes(tcp_daemon, tmp_path):
    reader = tcp_daemon.token("viewer", "read")
    runner = tcp_daemon.token("runner", "run")
    mounter = tcp_daemon.token("mounter", "run", "mount-host")
    with tcp_daemon.tcp(reader) as r:
        assert r.get("/v1/images").status_code == 200
        refused = r.post("/v1/sandboxes", json=SLEEP)
        assert refused.status_code == 403 and "'run'" in refused.json()["message"]
        assert r.post("/v1/jobs", files={"job": ("j.toml", b"name='x'")}).status_code == 403
        assert r.delete("/v1/images/busybox").status_code == 403
    mount = {**SLEEP, "command": ["true"], "mounts": [f"{tmp_path}:/data"]}
    with tcp_daemon.tcp(runner) as r:
        refused = r.post("/v1/sandboxes", json=mount)
        assert refused.status_code == 403 and refused.json()["field"] == "mounts"
        assert r.post("/v1/sandboxes", json={**mount, "mounts": [], "network": "host"}).status_code == 403
    with tcp_daemon.tcp(mounter) as r:
        made = r.post("/v1/sandboxes", params={"start": "true"}, json=mount)
        assert made.status_code == 201, made.text
        sid = made.json()["id"]
        assert r.post(f"/v1/sandboxes/{sid}/wait").json()["exit_code"] == 0
        r.delete(f"/v1/sandboxes/{sid}")


def test_the_cli_over_tcp_with_a_token(tcp_daemon):
    token = tcp_daemon.token("cli", "run")
    out = tcp_daemon.cli("run", "busybox", "--", "echo", "over tcp", token=token)
    assert out.returncode == 0 and out.stdout == b"over tcp\n"
    out = tcp_daemon.cli("ps", token="sbx_wrong")
    assert out.returncode == 125 and b"needs a valid token" in out.stderr


def test_what_weakens_a_sandbox_s_walls_needs_an_admin_token(tcp_daemon):
    runner = tcp_daemon.token("student", "run")
    for asks, field in (({"seccomp": "unconfined"}, "seccomp"),
                        ({"seccomp": "nested"}, "seccomp"),  # user namespaces allowed
                        ({"seccomp": "/etc/passwd"}, "seccomp"),  # a file of the host: mount-host
                        ({"network": {"mode": "bridge", "allow_host_ports": [6379]}}, "network"),
                        ({"cap_add": ["SYS_ADMIN"]}, "cap_add"),
                        ({"capabilities": ["CHOWN", "SYS_PTRACE"]}, "cap_add")):
        with tcp_daemon.tcp(runner) as r:
            refused = r.post("/v1/sandboxes", json={**SLEEP, **asks})
        assert refused.status_code == 403 and refused.json()["field"] == field, (asks, refused.text)
    with tcp_daemon.tcp(runner) as r:
        assert r.get("/v1/sandboxes").json() == []  # nothing half-made


SECCOMP_MODE = ("busybox", "--", "grep", "^Seccomp:", "/proc/self/status")


def test_the_cli_through_the_daemon_keeps_the_security_options(tcp_daemon):
    runner, admin = tcp_daemon.token("student", "run"), tcp_daemon.token("teacher", "admin")
    filtered = tcp_daemon.cli("run", *SECCOMP_MODE, token=runner)
    assert (filtered.returncode, filtered.stdout) == (0, b"Seccomp:\t2\n"), filtered.stderr
    refused = tcp_daemon.cli("run", "--security-opt", "seccomp=unconfined", *SECCOMP_MODE, token=runner)
    assert refused.returncode == 125 and b"admin token" in refused.stderr
    assert refused.stderr.count(b"\n") == 1, refused.stderr
    unconfined = tcp_daemon.cli("run", "--security-opt", "seccomp=unconfined", *SECCOMP_MODE, token=admin)
    assert (unconfined.returncode, unconfined.stdout) == (0, b"Seccomp:\t0\n"), unconfined.stderr
    mapped = tcp_daemon.cli("run", "--userns", "auto", "busybox", "--", "cat", "/proc/self/uid_map",
                            token=runner)
    inside, outside, count = mapped.stdout.split()
    assert mapped.returncode == 0 and inside == b"0" and int(outside) > 0 and int(count) > 0, mapped
    refused = tcp_daemon.cli("run", "--network", "bridge", "--allow-host-port", "6379", "busybox",
                             "--", "true", token=runner)
    assert refused.returncode == 125 and b"allow_host_ports" in refused.stderr


def test_a_job_that_weakens_its_walls_needs_an_admin_token(tcp_daemon):
    submitter, admin = tcp_daemon.token("ci", "jobs"), tcp_daemon.token("teacher", "admin")
    base = 'name = "j"\nimage = "busybox"\nnetwork = "bridge"\n[[steps]]\nname = "s"\nrun = "true"\n'
    for security, field in (('seccomp = "unconfined"', "security.seccomp"),
                            ("allow_host_ports = [6379]", "security.allow_host_ports")):
        job = f"{base}[security]\n{security}\n".encode()
        with tcp_daemon.tcp(submitter) as c:
            refused = c.post("/v1/jobs", files={"job": ("j.toml", job)})
            assert refused.status_code == 403 and refused.json()["field"] == field, refused.text
            assert c.get("/v1/jobs").json() == []  # nothing queued
        with tcp_daemon.tcp(admin) as c:
            made = c.post("/v1/jobs", files={"job": ("j.toml", job)})
            assert made.status_code == 201, made.text
            assert wait_status(c, made.json()["jobs"][0]["id"])["status"] == "passed"


def test_tag_import_and_commit_need_the_images_scope_and_a_visible_sandbox(tcp_daemon):
    reader, runner = tcp_daemon.token("viewer", "read"), tcp_daemon.token("alice", "run")
    imager = tcp_daemon.token("bob", "images")
    archive = {"archive": ("r.tar", bytes(10240), "application/x-tar")}
    with tcp_daemon.tcp(reader) as r:
        for method, path, kw in (("POST", "/v1/images/busybox/tag", {"params": {"target": "x:1"}}),
                                 ("POST", "/v1/images/import", {"params": {"name": "x:1"}, "files": archive}),
                                 ("POST", "/v1/images/commit", {"params": {"sandbox": "s", "target": "x:1"}})):
            refused = r.request(method, path, **kw)
            assert refused.status_code == 403 and "'images'" in refused.json()["message"], path
    with tcp_daemon.tcp(runner) as a, tcp_daemon.tcp(imager) as b:
        mine = a.post("/v1/sandboxes", params={"start": "true"}, json=SLEEP).json()["id"]
        try:
            r = b.post("/v1/images/commit", params={"sandbox": mine, "target": "stolen:1"})
            assert r.status_code == 404, r.text  # bob cannot see alice's sandbox
            tagged = b.post("/v1/images/busybox/tag", params={"target": "bobs:1"})
            assert tagged.status_code == 201 and tagged.json()["tags"], tagged.text
            assert b.delete("/v1/images/bobs:1").status_code == 200
        finally:
            a.delete(f"/v1/sandboxes/{mine}", params={"force": "true"})
