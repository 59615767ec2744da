"""The daemon's API through httpx, against a `sandbox daemon` started by the test."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from websockets.sync.client import unix_connect

from .conftest import MUST_WORK  # noqa: F401 - the suite's conftest, imported once
from .daemon_support import daemon  # noqa: F401 - fixture

pytestmark = pytest.mark.root

BUSYBOX = {"image": "busybox"}


def run(client, command, **spec):
    """Create and start; the sandbox's id."""
    r = client.post("/v1/sandboxes", params={"start": "true"}, json={**BUSYBOX, "command": command, **spec})
    assert r.status_code == 201, r.text
    return r.json()["id"]


def test_health_version_info_and_openapi(daemon):
    with daemon.unix() as c:
        assert c.get("/v1/health").json() == {"status": "ok"}
        assert c.get("/v1/version").json()["api"] == "v1"
        info = c.get("/v1/info").json()
        assert info["jobs"] == "in-process"
        assert {check["name"] for check in info["checks"]} >= {"root", "cgroups"}
        paths = c.get("/v1/openapi.json").json()["paths"]
        assert "/v1/sandboxes/{ref}/logs" in paths and "/v1/jobs/{job_id}/log/text" in paths


def test_create_start_wait_delete(daemon):
    with daemon.unix() as c:
        sid = run(c, ["sh", "-c", "echo out; echo err >&2; exit 3"])
        ended = c.post(f"/v1/sandboxes/{sid}/wait").json()
        assert ended["exit_code"] == 3 and ended["result"]["cause"] == "exited"
        assert c.get(f"/v1/sandboxes/{sid}/logs").content == b"out\nerr\n"
        assert c.get(f"/v1/sandboxes/{sid}/logs", params={"stderr": "false"}).content == b"out\n"
        assert c.get(f"/v1/sandboxes/{sid}/logs", params={"since": time.time() + 60}).content == b""
        assert c.get(f"/v1/sandboxes/{sid}/logs", params={"since": 0}).content == b"out\nerr\n"
        for since in ("nan", "soon"):
            bad = c.get(f"/v1/sandboxes/{sid}/logs", params={"since": since})
            assert bad.status_code == 400 and bad.json()["field"] == "since", bad.text
        detail = c.get(f"/v1/sandboxes/{sid}").json()
        assert detail["status"] == "exited (3)" and detail["spec"]["image"] == "busybox"
        assert c.delete(f"/v1/sandboxes/{sid}").json() == {"id": sid}
        assert c.get(f"/v1/sandboxes/{sid}").status_code == 404


def test_a_run_followed_in_one_request_streams_what_was_made_its_output_and_its_end(daemon):
    """`sandbox run` in one request: frames of type 3 (made), 1/2 (output), 4 (ended)."""
    with daemon.unix() as c:
        with c.stream("POST", "/v1/sandboxes", params={"start": "true", "remove": "true",
                                                       "follow": "true"},
                      json={**BUSYBOX, "command": ["sh", "-c", "echo out; echo err >&2; exit 3"],
                            "limits": {"memory": "64m"}}) as r:
            assert r.status_code == 201
            assert r.headers["content-type"] == "application/vnd.docker.multiplexed-stream"
            raw = r.read()
        frames = []
        while raw:
            size = int.from_bytes(raw[4:8], "big")
            frames.append((raw[0], raw[8:8 + size]))
            raw = raw[8 + size:]
        kinds = [kind for kind, _ in frames]
        assert kinds[0] == 3 and kinds[-1] == 4 and sorted(kinds[1:-1]) == [1, 2], kinds
        made = json.loads(frames[0][1])
        # running, or exited already: a short command can end before the first frame is made
        assert made["status"] in ("running", "exited") and isinstance(made["warnings"], list)
        assert dict(frames[1:-1]) == {1: b"out\n", 2: b"err\n"}
        ended = json.loads(frames[-1][1])
        assert ended["id"] == made["id"] and ended["exit_code"] == 3
        assert ended["result"]["cause"] == "exited"
        assert c.get(f"/v1/sandboxes/{made['id']}").status_code == 404  # remove: forgotten
        for query in ({"follow": "true"}, {"follow": "true", "start": "true", "stdin": "true"},
                      {"follow": "true", "start": "true", "detach": "true"}):
            bad = c.post("/v1/sandboxes", params=query, json=BUSYBOX)
            assert bad.status_code == 400 and bad.json()["field"] == "follow", bad.text
        bad = c.post("/v1/sandboxes", params={"start": "true", "follow": "true"},
                     json={**BUSYBOX, "command": ["nope"]})
        assert bad.status_code == 400 and bad.json()["exit_status"] == 127  # before any frame
        assert c.get("/v1/sandboxes").json() == []


def test_created_then_started(daemon):
    with daemon.unix() as c:
        r = c.post("/v1/sandboxes", json={**BUSYBOX, "command": ["echo", "later"], "name": "two-step"})
        assert r.status_code == 201 and r.json()["status"] == "created"
        assert c.post("/v1/sandboxes/two-step/start").status_code == 204
        assert c.post("/v1/sandboxes/two-step/wait").json()["exit_code"] == 0
        assert c.get("/v1/sandboxes/two-step/logs").text == "later\n"
        c.delete("/v1/sandboxes/two-step")


def test_bad_spec_reads_as_the_cli(daemon):
    from sandbox import Limits, SpecError

    with pytest.raises(SpecError) as local:
        Limits(memory="lots")
    with daemon.unix() as c:
        r = c.post("/v1/sandboxes", json={**BUSYBOX, "limits": {"memory": "lots"}})
        assert r.status_code == 400
        assert r.json()["message"] == str(local.value) and r.json()["field"] == "memory"
        r = c.post("/v1/sandboxes", json={**BUSYBOX, "upper_dir": "/etc"})
        assert r.status_code == 400 and r.json()["field"] == "upper_dir"
        r = c.post("/v1/sandboxes", json={"image": "nope-image"})
        assert r.status_code == 404 and "image 'nope-image' not found" in r.json()["message"]
        r = c.post("/v1/sandboxes", params={"start": "true"}, json={**BUSYBOX, "command": ["nope"]})
        assert r.status_code == 400 and r.json()["exit_status"] == 127
        assert c.get("/v1/sandboxes").json() == []


def test_logs_follow_as_sse_and_multiplexed(daemon):
    with daemon.unix() as c:
        sid = run(c, ["sh", "-c", "for i in 1 2 3; do echo line$i; sleep 0.1; done; echo e >&2"])
        with c.stream("GET", f"/v1/sandboxes/{sid}/logs", params={"follow": "true"},
                      headers={"Accept": "text/event-stream"}) as r:
            events = [json.loads(line[6:]) for line in r.iter_lines() if line.startswith("data: ")]
        assert "".join(e["data"] for e in events) == "line1\nline2\nline3\ne\n"
        assert events[-1]["stream"] == "stderr"
        raw = c.get(f"/v1/sandboxes/{sid}/logs", params={"format": "multiplexed"}).content
        assert raw[:8] == bytes([1, 0, 0, 0, 0, 0, 0, 6]) and raw[8:14] == b"line1\n"
        c.delete(f"/v1/sandboxes/{sid}")


def test_log_follow_resumes_without_losing_or_repeating(daemon):
    """A follower that drops the connection resumes with Last-Event-ID: every line once."""
    with daemon.unix() as c:
        sid = run(c, ["sh", "-c", "i=0; while [ $i -lt 300 ]; do echo line$i; i=$((i+1)); "
                                  "[ $((i % 50)) = 0 ] && sleep 0.05; done"])
        seen, last = [], None
        for _attempt in range(100):
            headers = {"Accept": "text/event-stream", **({"Last-Event-ID": last} if last else {})}
            with c.stream("GET", f"/v1/sandboxes/{sid}/logs", params={"follow": "true"},
                          headers=headers) as r:
                got = 0
                for line in r.iter_lines():
                    if line.startswith("id: "):
                        last = line[4:]
                    elif line.startswith("data: "):
                        seen.append(json.loads(line[6:])["data"])
                        got += 1
                        if got == 7:
                            break  # drop the connection mid-stream
                else:
                    break
        text = "".join(seen)
        assert text == "".join(f"line{i}\n" for i in range(300))
        c.delete(f"/v1/sandboxes/{sid}")


def test_kill_stop_and_stats(daemon):
    with daemon.unix() as c:
        sid = run(c, ["sleep", "60"])
        stats = c.get(f"/v1/sandboxes/{sid}/stats").json()
        assert stats["status"] == "running" and stats["peak_memory"] > 0
        assert c.post(f"/v1/sandboxes/{sid}/kill", params={"signal": "BOGUS"}).status_code == 400
        assert c.post(f"/v1/sandboxes/{sid}/stop", params={"timeout": 5}).status_code == 204
        ended = c.post(f"/v1/sandboxes/{sid}/wait").json()
        assert ended["exit_code"] == 128 + 15
        r = c.post(f"/v1/sandboxes/{sid}/kill")
        assert r.status_code == 409 and "not running" in r.json()["message"], r.text
        c.delete(f"/v1/sandboxes/{sid}")


def test_delete_running_needs_force(daemon):
    with daemon.unix() as c:
        sid = run(c, ["sleep", "60"])
        r = c.delete(f"/v1/sandboxes/{sid}")
        assert r.status_code == 409 and "is running" in r.json()["message"]
        assert c.delete(f"/v1/sandboxes/{sid}", params={"force": "true"}).json() == {"id": sid}
        assert c.get("/v1/sandboxes", params={"all": "true"}).json() == []


def test_a_delete_racing_the_sandbox_s_own_end_or_another_delete_answers_200_or_404(daemon):
    """The daemon removes what it runs through its own teardown: a DELETE that meets the
    command ending by itself, or a second DELETE, answers 200 or 404, never 4xx/5xx for a
    cgroup or file that went meanwhile, and the sandbox is gone after either."""
    answers = []
    with daemon.unix() as c, daemon.unix() as other:
        for i in range(12):
            sid = run(c, ["sleep", "0.05"] if i % 2 else ["sleep", "60"])
            time.sleep(0.01 * (i % 6))  # around the moment a short one ends by itself
            with ThreadPoolExecutor(2) as pool:
                pair = [f.result() for f in [pool.submit(client.delete, f"/v1/sandboxes/{sid}",
                                                         params={"force": "true"})
                                             for client in (c, other)]]
            answers += [(r.status_code, r.text) for r in pair]
            assert 200 in [r.status_code for r in pair], pair
            assert c.get(f"/v1/sandboxes/{sid}").status_code == 404
    assert all(code in (200, 404) for code, _ in answers), answers


def test_attach_websocket_stdin_and_signals(daemon):
    with daemon.unix() as c:
        r = c.post("/v1/sandboxes", params={"start": "true", "stdin": "true"},
                   json={**BUSYBOX, "command": ["sh", "-c", "cat; echo done >&2"]})
        sid = r.json()["id"]
        with unix_connect(daemon.socket, f"ws://localhost/v1/sandboxes/{sid}/attach") as ws:
            ws.send(b"hello\n")
            assert ws.recv(timeout=30) == b"\x01hello\n"
            ws.send(b"")  # EOF
            assert ws.recv(timeout=30) == b"\x02done\n"
            ended = json.loads(ws.recv(timeout=30))
        assert ended["exit_code"] == 0
        c.delete(f"/v1/sandboxes/{sid}")
        sid = run(c, ["sleep", "60"], stdin=None)
        with unix_connect(daemon.socket, f"ws://localhost/v1/sandboxes/{sid}/attach") as ws:
            ws.send(json.dumps({"signal": "SIGTERM"}))
            assert json.loads(ws.recv(timeout=30))["exit_code"] == 143
        c.delete(f"/v1/sandboxes/{sid}")


def test_images_and_networks(daemon):
    with daemon.unix() as c:
        rows = c.get("/v1/images").json()
        assert [r["name"] for r in rows][-1] == "host"
        busybox = c.get("/v1/images/busybox").json()
        assert busybox["RepoTags"] == ["busybox:latest"]
        r = c.get("/v1/images/nope:1")
        assert r.status_code == 404 and "not found" in r.json()["message"]
        r = c.post("/v1/networks", json={"name": "apinet"})
        assert r.status_code == 201 and r.json()["name"] == "apinet"
        assert r.json()["isolated"] is False
        r = c.post("/v1/networks", json={"name": "apiiso", "isolated": True})
        assert r.status_code == 201 and r.json()["isolated"] is True
        rows = {n["name"]: n for n in c.get("/v1/networks").json()}
        assert not rows["apinet"]["isolated"] and rows["apiiso"]["isolated"]
        assert c.post("/v1/networks", json={"name": "apinet"}).status_code in (400, 409)
        assert c.post("/v1/networks", json={"name": "x", "isolated": "maybe"}).status_code == 400
        assert c.delete("/v1/networks/apinet").json()["name"] == "apinet"
        assert c.delete("/v1/networks/apiiso").json()["name"] == "apiiso"


def test_sigterm_stops_running_sandboxes_and_removes_the_socket(daemon):
    import os

    with daemon.unix() as c:
        run(c, ["sleep", "600"])
        assert len(c.get("/v1/sandboxes").json()) == 1
    t0 = time.monotonic()
    assert daemon.stop() == 0
    assert time.monotonic() - t0 < 30
    assert not os.path.exists(daemon.socket)
