"""Tokens and scopes on the daemon's TCP listener: no token is 401, a token sees only its own."""

from __future__ import annotations

import pytest

from .daemon_support import tcp_daemon  # noqa: F401 - fixture

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
