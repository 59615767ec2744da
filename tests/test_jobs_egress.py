"""Steps that reach the network (egress), and the example job that installs its dependencies
from a cache and tests against a Redis service, both against a stand-in for the internet."""

from __future__ import annotations

import os

import pytest

from jobs import load_job_file, run_job
from jobs.cache import entries, remove_all

from .jobs_support import ROOT, Outside, job_file, redis_wheel

pytestmark = pytest.mark.root


@pytest.fixture
def outside(tmp_path):
    """An HTTP server beyond the host's forwarding, serving ``tmp_path/www``."""
    www = tmp_path / "www"
    www.mkdir()
    (www / "hello.txt").write_text("hello from outside\n")
    server = Outside(str(www)).start()
    yield server
    server.stop()


FETCH = """
    import sys, urllib.request
    sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=2).read().decode())
"""


def test_only_a_step_with_egress_reaches_the_outside(outside, tmp_path):
    fetch = f"python3 fetch.py {outside.url}/hello.txt 2>/dev/null"
    (spec,) = load_job_file(job_file(tmp_path, f"""
        name = "egress"
        image = "host"
        workspace = "ws"
        [[steps]]
        name = "isolated"
        run = "{fetch} || echo 'no route out'"
        [[steps]]
        name = "on the job's network, no egress"
        network = "bridge"
        run = "{fetch} || echo 'dropped'"
        [[steps]]
        name = "egress"
        egress = true
        run = "{fetch}"
    """, {"fetch.py": FETCH}))
    events = []
    result = run_job(spec, on_event=events.append)
    assert result.status == "passed", [(e.step, e.data) for e in events if e.data]
    out = {step.name: b"".join(e.data for e in events if e.kind == "out" and e.step == step.name)
           for step in spec.steps}
    assert out == {"isolated": b"no route out\n", "on the job's network, no egress": b"dropped\n",
                   "egress": b"hello from outside\n"}
    assert outside.requests == ["/hello.txt"]


@pytest.fixture
def no_caches():
    remove_all()
    yield
    remove_all()


def test_the_integration_example_installs_from_its_cache_the_second_time(outside, no_caches):
    index = os.path.join(outside.directory, "simple", "redis")
    os.makedirs(index)
    wheel = redis_wheel(index)
    example = os.path.join(ROOT, "examples", "integration.toml")
    (spec,) = load_job_file(example, params={"PIP_INDEX_URL": f"{outside.url}/simple",
                                                "PIP_TRUSTED_HOST": outside.ADDRESS})
    runs = []
    for _ in range(2):
        events = []
        result = run_job(spec, on_event=events.append)
        assert result.status == "passed", (result, b"".join(e.data for e in events))
        assert result.junit.tests == 3 and result.services[0].status == "ready"
        runs.append(b"".join(e.data for e in events if e.step == "deps"))
    assert runs[0].endswith(b"downloaded the wheels, then installed\n")
    assert runs[1].endswith(b"installed from the cached wheels\n")
    assert outside.requests.count(f"/simple/redis/{wheel}") == 1  # the second job used the cache
    (entry,) = entries()
    assert entry.key.startswith("wheels-") and entry.paths == ("/root/.cache/wheels",)
    assert entry.size > 100_000
