"""Jobs through the daemon's API: submit (multipart), list, show, JUnit, artifacts, the live log."""

from __future__ import annotations

import io
import json
import tarfile
import threading

import pytest

from .daemon_support import Daemon, daemon, rss_kib, wait_status  # noqa: F401 - fixture
from .jobs_support import queue, redis_url, workers  # noqa: F401 - fixtures

pytestmark = pytest.mark.root

JOB = b"""
name = "api job"
image = "busybox"
workspace = "ws"
[[steps]]
name = "test"
run = '''cat in.txt; cat > report.xml <<EOF
<testsuite tests="2"><testcase classname="t" name="ok"/><testcase classname="t" name="bad"><failure message="boom">trace</failure></testcase></testsuite>
EOF'''
[results]
junit = ["report.xml"]
artifacts = ["report.xml"]
"""


def workspace_tar(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_submit_show_junit_artifacts_and_logs(daemon):
    with daemon.unix() as c:
        r = c.post("/v1/jobs", files={"job": ("job.toml", JOB),
                                      "workspace": ("ws.tar.gz", workspace_tar({"in.txt": b"in-ws\n"}))})
        assert r.status_code == 201, r.text
        assert r.json()["queued"] is False
        job_id = r.json()["jobs"][0]["id"]
        fields = wait_status(c, job_id)
        assert fields["status"] == "failed" and fields["result"]["junit"]["failures"] == 1
        junit = c.get(f"/v1/jobs/{job_id}/junit").json()
        assert junit["failed"] == [{"nodeid": "t::bad", "outcome": "failed", "message": "boom",
                                    "text": "trace"}]
        assert junit["suites"][0]["name"] == "t" and junit["suites"][0]["failures"] == 1
        assert [a["path"] for a in c.get(f"/v1/jobs/{job_id}/artifacts").json()] == ["report.xml"]
        assert c.get(f"/v1/jobs/{job_id}/artifacts/report.xml").content.startswith(b"<testsuite")
        assert c.get(f"/v1/jobs/{job_id}/artifacts/nope").status_code == 404
        text = c.get(f"/v1/jobs/{job_id}/log/text")
        assert text.headers["X-More-Data"] == "false"
        assert b"==> [1/1] test:" in text.content and b"in-ws\n" in text.content
        assert int(text.headers["X-Text-Size"]) == len(text.content)
        rest = c.get(f"/v1/jobs/{job_id}/log/text", params={"start": 10})
        assert rest.content == text.content[10:]
        assert [j["id"] for j in c.get("/v1/jobs", params={"status": "failed"}).json()] == [job_id]
        assert c.get("/v1/jobs", params={"status": "passed"}).json() == []
        assert c.get("/v1/jobs", params={"name": "nope"}).json() == []
        assert c.get("/v1/jobs", params={"status": "bogus"}).status_code == 400


def test_job_file_errors_read_as_the_cli(daemon):
    with daemon.unix() as c:
        r = c.post("/v1/jobs", files={"job": ("job.toml", b'name = "x"\n[[steps]]\nname = "s"\n'
                                                          b'run = "true"\ntimeout = "soon"\n')})
        assert r.status_code == 400
        assert r.json()["message"] == ('job.toml: steps[0].timeout: \'soon\': expected a duration '
                                       'like 90, "30s", "10m" or "1h"')
        assert r.json()["field"] == "steps[0].timeout"
        r = c.post("/v1/jobs", files={"job": ("job.toml", JOB)})  # names a workspace, sends none
        assert r.status_code == 400 and r.json()["field"] == "workspace"
        r = c.post("/v1/jobs", files={"job": ("job.json", json.dumps(
            {"name": "j", "image": "busybox", "steps": [{"name": "s", "run": "echo json"}]}).encode())})
        assert r.status_code == 201
        assert wait_status(c, r.json()["jobs"][0]["id"])["status"] == "passed"
        assert c.get("/v1/jobs/nope").status_code == 404


def read_sse(response, limit=None):
    events = []
    for line in response.iter_lines():
        if line.startswith("data: "):
            events.append(json.loads(line[6:]))
            if limit and len(events) >= limit:
                break
    return events


def lines_job(n: int, name: str = "lines") -> bytes:
    return (f'name = "{name}"\nimage = "busybox"\n[[steps]]\nname = "count"\n'
            f'run = "i=0; while [ $i -lt {n} ]; do echo line$i; i=$((i+1)); '
            f'[ $((i % 100)) = 0 ] && sleep 0.02; done; true"\n').encode()


def output_of(events) -> str:
    return "".join(e["data"] for e in events if e["kind"] == "out")


def test_job_log_resumes_with_last_event_id(daemon):
    with daemon.unix() as c:
        job_id = c.post("/v1/jobs", files={"job": ("j.toml", lines_job(500))}).json()["jobs"][0]["id"]
        events, last = [], None
        while not events or events[-1]["kind"] != "eof":
            headers = {"Last-Event-ID": str(last)} if last else {}
            with c.stream("GET", f"/v1/jobs/{job_id}/log", headers=headers) as r:
                got = read_sse(r, limit=40)
            events += got
            last = got[-1]["seq"]
        assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
        assert output_of(events) == "".join(f"line{i}\n" for i in range(500))


def test_fifty_followers_while_jobs_run(tmp_path, needs_root, redis_url, queue, workers):
    """50 clients follow the live logs of jobs run by workers: no lost line, bounded memory."""
    d = Daemon(tmp_path, redis=redis_url).start()
    try:
        with d.unix() as c:
            ids = [c.post("/v1/jobs", params={"queue": queue},
                          files={"job": ("j.toml", lines_job(2000, f"job{n}"))}).json()["jobs"][0]["id"]
                   for n in range(5)]
            before = rss_kib(d.proc.pid)
            results: dict[int, str] = {}

            def follow(n: int) -> None:
                with d.unix(timeout=120) as fc, fc.stream("GET", f"/v1/jobs/{ids[n % 5]}/log") as r:
                    results[n] = output_of(read_sse(r))

            threads = [threading.Thread(target=follow, args=(n,)) for n in range(50)]
            for t in threads:
                t.start()
            workers.start("--concurrency", "2", "--burst")
            for t in threads:
                t.join(300)
            expected = "".join(f"line{i}\n" for i in range(2000))
            assert sorted(results) == list(range(50))
            assert all(text == expected for text in results.values())
            for job_id in ids:
                assert wait_status(c, job_id)["status"] == "passed"
            assert rss_kib(d.proc.pid) - before < 64 * 1024  # no copy per follower
    finally:
        assert d.stop() == 0
