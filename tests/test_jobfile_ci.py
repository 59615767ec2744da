"""The job file's CI keys (network, egress, services, cache, params, secrets) and what
serves them without root: secret masking, cache keys, the console's folding."""

from __future__ import annotations

import io
import json
import random

import pytest

from jobs import JobFileError, JobSpec, load_job_file
from jobs.cache import render_key
from jobs.ci_keys import needs_network, step_network
from jobs.errors import JobError
from jobs.events import JobLog, LogEvent, MemorySink
from jobs.render import Renderer
from jobs.secrets import SecretError, Secrets, read_secret_args

PIPELINE = """
name = "ci"
image = "busybox"
[params]
LEVEL = "info"
[cache]
key = "pip-{hash:requirements.txt}-{env:LEVEL}"
paths = ["/root/.cache/pip", "node_modules"]
[services.web]
command = ["httpd", "-f"]
depends_on = ["db"]
ready_port = 80
[services.db]
image = "host"
command = "redis-server --protected-mode no"
ready = "redis-cli ping"
ready_timeout = "5s"
limits = { memory = "128m" }
env = { A = "1" }
secrets = ["DB_PASSWORD"]
[[steps]]
name = "deps"
egress = true
run = "true"
[[steps]]
name = "test"
run = "true"
secrets = ["TOKEN"]
[[steps]]
name = "offline"
network = "none"
run = "true"
"""


def write(tmp_path, text, name="job.toml"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_the_ci_keys_become_the_spec(tmp_path):
    (spec,) = load_job_file(write(tmp_path, PIPELINE), params={"LEVEL": "debug"},
                            secrets={"TOKEN", "DB_PASSWORD"})
    assert [s.name for s in spec.services] == ["db", "web"]  # dependencies first
    db, web = spec.services
    assert db.command == ("sh", "-c", "redis-server --protected-mode no") and db.ready_timeout == 5
    assert db.limits == {"memory": 128 << 20} and db.secrets == ("DB_PASSWORD",)
    assert web.command == ("httpd", "-f") and web.ready_port == 80 and web.ready_timeout == 60
    assert spec.cache.paths == ("/root/.cache/pip", "/workspace/node_modules")
    assert spec.params == {"LEVEL": "debug"} and spec.env["LEVEL"] == "debug"
    assert spec.network == "bridge" and needs_network(spec)  # it has services
    assert [step_network(spec, s) for s in spec.steps] == [("bridge", True), ("bridge", False),
                                                           ("none", False)]
    assert spec.secret_names == ("TOKEN", "DB_PASSWORD")
    assert JobSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec


def test_steps_default_to_no_network_and_egress_alone_opts_in(tmp_path):
    text = ('name = "x"\n[[steps]]\nname = "a"\nrun = "true"\n'
            '[[steps]]\nname = "b"\nrun = "true"\negress = true\n')
    (spec,) = load_job_file(write(tmp_path, text))
    assert spec.network == "none" and spec.params == {} and spec.services == ()
    assert [step_network(spec, s) for s in spec.steps] == [("none", False), ("bridge", True)]
    assert needs_network(spec)
    (plain,) = load_job_file(write(tmp_path, 'name = "x"\n[[steps]]\nname = "a"\nrun = "true"\n'))
    assert not needs_network(plain)


def test_job_level_egress_gives_every_step_the_network_unless_one_says_none(tmp_path):
    text = ('name = "x"\negress = true\n[[steps]]\nname = "a"\nrun = "true"\n'
            '[[steps]]\nname = "b"\nrun = "true"\nnetwork = "none"\n')
    (spec,) = load_job_file(write(tmp_path, text))
    assert [step_network(spec, s) for s in spec.steps] == [("bridge", True), ("none", False)]


STEP = '[[steps]]\nname = "s"\nrun = "true"\n'
BAD = [
    ('[services.Web_1]\ncommand = "x"\n', "services.Web_1", "not a valid host name"),
    ('[services.-db]\ncommand = "x"\n', "services.-db", "not a valid host name"),
    ('[services.localhost]\ncommand = "x"\n', "services.localhost", "not a valid host name"),
    ('[services.a]\ncommand = "x"\ndepends_on = ["b"]\n[services.b]\ncommand = "x"\n'
     'depends_on = ["a"]\n', "services.a.depends_on", "a cycle: a -> b -> a"),
    ('[services.a]\ncommand = "x"\ndepends_on = ["nope"]\n', "services.a.depends_on",
     "'nope' is no service of this job"),
    ('[services.a]\ncommand = "x"\ndepends_on = ["a"]\n', "services.a.depends_on", "the service itself"),
    ('[services.a]\ncommand = "x"\nready = "true"\nready_port = 1\n', "services.a.ready_port",
     "one readiness check"),
    ('[services.a]\ncommand = "x"\nready_port = 70000\n', "services.a.ready_port", "1 to 65535"),
    ('[services.a]\ncommand = 3\n', "services.a.command", "a string"),
    ('[services.a]\nimage = "x"\nport = 1\n', "services.a.port", "unknown key"),
    ('[services.a]\ncommand = "x"\nlimits = { memory = "lots" }\n', "services.a.limits.memory",
     "expected"),
    ('services = 1\n', "services", "expected tables like [services.redis]"),
    ('network = "host"\n', "network", "expected \"none\" or \"bridge\""),
    ('network = "none"\negress = true\n', "egress", "network = \"bridge\""),
    ('network = "none"\n[services.a]\ncommand = "x"\n', "network", "a job with [services]"),
    ('[cache]\nkey = "k"\npaths = ["/etc/pip"]\n', "cache.paths", "outside the sandbox's writable areas"),
    ('[cache]\nkey = "k"\npaths = ["/root"]\n', "cache.paths", "outside the sandbox's writable areas"),
    ('[cache]\nkey = "k"\npaths = ["../up"]\n', "cache.paths", "without '..'"),
    ('[cache]\nkey = "k"\npaths = ["/tmp/a", "/tmp/a/b"]\n', "cache.paths", "overlap"),
    ('[cache]\nkey = "k"\npaths = []\n', "cache.paths", "non-empty list"),
    ('[cache]\nkey = "pip {x}"\npaths = ["/tmp/a"]\n', "cache.key", "' ' is not allowed"),
    ('[cache]\nkey = "{file:x}"\npaths = ["/tmp/a"]\n', "cache.key", "expected text"),
    ('[cache]\nkey = "{hash:/etc/passwd}"\npaths = ["/tmp/a"]\n', "cache.key", "relative glob"),
    ('[cache]\nkey = "{env:NOPE}"\npaths = ["/tmp/a"]\n', "cache.key", "the job sets no NOPE"),
    ('[params]\nX = "1"\n[env]\nX = "2"\n', "env.X", "also a parameter"),
    ('[params]\nX = "1"\n[matrix]\nX = ["a"]\n', "matrix.X", "also a parameter"),
    ('[params]\n1X = "1"\n', "params.1X", "invalid name"),
]


@pytest.mark.parametrize("text, key, accepted", BAD)
def test_each_mistake_is_one_line_naming_file_and_key(tmp_path, text, key, accepted):
    path = write(tmp_path, 'name = "x"\n' + text + STEP)
    with pytest.raises(JobFileError) as info:
        load_job_file(path)
    message = str(info.value)
    assert message.startswith(f"{path}: {key}: "), message
    assert accepted in message and "\n" not in message
    assert info.value.key == key


STEP_BAD = [
    ('network = "bridge"\negress = "yes"\n', "steps[0].egress", "true or false"),
    ('network = "none"\negress = true\n', "steps[0].egress", "network = \"bridge\""),
    ('secrets = ["A", "A"]\n', "steps[0].secrets", "distinct names"),
    ('secrets = "A"\n', "steps[0].secrets", "a list"),
]


@pytest.mark.parametrize("text, key, accepted", STEP_BAD)
def test_a_step_s_ci_keys_are_checked_too(tmp_path, text, key, accepted):
    path = write(tmp_path, 'name = "x"\n' + STEP + text)
    with pytest.raises(JobFileError, match=key.replace("[", r"\[").replace("]", r"\]")) as info:
        load_job_file(path)
    assert accepted in str(info.value) and info.value.key == key


def test_unknown_params_and_secrets_are_refused_naming_the_file(tmp_path):
    path = write(tmp_path, 'name = "x"\n[params]\nA = "1"\n' + STEP + 'secrets = ["TOKEN"]\n')
    with pytest.raises(JobFileError, match=r"params: --param B=2: no such parameter \(declared: A"):
        load_job_file(path, params={"B": "2"}, secrets={"TOKEN"})
    with pytest.raises(JobFileError, match=r"steps\[0\]\.secrets: 'TOKEN' was not given"):
        load_job_file(path, secrets=set())
    with pytest.raises(JobFileError, match="--secret OTHER: no step or service lists it"):
        load_job_file(path, secrets={"TOKEN", "OTHER"})
    (spec,) = load_job_file(path)  # only validated: secrets not checked
    assert spec.secret_names == ("TOKEN",)


def test_the_cli_refuses_them_with_one_line_and_125(tmp_path, capsys, monkeypatch):
    from sandbox.cli import main

    path = write(tmp_path, 'name = "x"\n' + STEP + 'secrets = ["TOKEN"]\n')
    monkeypatch.delenv("TOKEN", raising=False)
    for args, expected in [(["--secret", "TOKEN"], "the environment has no TOKEN"),
                           (["--param", "A=1", "--secret", "TOKEN=x"], "--param A=1: no such"),
                           (["--param", "=1"], "--param =1: expected NAME=VALUE"),
                           ([], "'TOKEN' was not given"),
                           (["--secret", "TOKEN=@/nonexistent"], "cannot read it")]:
        assert main(["submit", *args, path]) == 125
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and expected in err, err


# -- secrets ----------------------------------------------------------------------

def test_secret_arguments_come_from_the_environment_a_file_or_as_given(tmp_path):
    (tmp_path / "pw").write_text("from-file\n")
    values = read_secret_args(["A", f"B=@{tmp_path}/pw", "C=given=x"], {"A": "from-env"})
    assert values == {"A": "from-env", "B": "from-file", "C": "given=x"}
    for bad in (["A=", "A"], ["A", "A"], ["1A"]):
        with pytest.raises(SecretError):
            read_secret_args(bad, {"A": ""})


def test_masking_covers_overlaps_and_multi_line_values():
    masks = Secrets({"A": "hunter2", "B": "ter2-zz", "C": "line one\nline two\n}"})
    assert masks.mask_bytes(b"pw hunter2-zz!") == b"pw ***!"
    assert masks.mask_bytes(b"hunter2hunter2") == b"******"
    assert masks.mask("it was\nline two\nthen }") == "it was\n***\nthen }"
    tree = masks.mask_tree({"hunter2.txt": ["x hunter2", 3, None]})
    assert tree == {"***.txt": ["x ***", 3, None]}


@pytest.mark.parametrize("seed", range(20))
def test_a_stream_is_masked_however_its_chunks_fall(seed):
    masks = Secrets({"A": "hunter2", "B": "abcab", "C": "xx-hunter2-yy"})
    text = b"go hunter2 and abcabcab, xx-hunter2-yy; hunhunter2 xx-hunter2-y end abca"
    rng = random.Random(seed)
    stream, out, at = masks.stream(), b"", 0
    while at < len(text):
        size = rng.randint(1, 5)
        out += stream.feed(text[at:at + size])
        at += size
    out += stream.flush()
    assert out == masks.mask_bytes(text)
    assert not any(p in out for p in masks.patterns)


def test_the_job_log_masks_every_event_before_its_sinks():
    sink = MemorySink()
    log = JobLog(sink, secrets=Secrets({"T": "s3cret"}))
    log.output("stdout", b"the key is s3", step="a")
    log.output("stdout", b"cret, really", step="a")
    log.end_output(step="a")
    log.emit("note", data=b"note s3cret", message="s3cret")
    text = b"".join(e.data for e in sink.events if e.kind == "out")
    assert text == b"the key is ***, really"
    assert sink.events[-1].data == b"note ***" and sink.events[-1].fields["message"] == "***"
    assert [e.seq for e in sink.events] == list(range(1, len(sink.events) + 1))


# -- cache keys, the console -------------------------------------------------------

def test_cache_keys_hash_workspace_files_and_env_values(tmp_path):
    (tmp_path / "requirements.txt").write_text("six\n")
    (tmp_path / "outside").write_text("x")
    (tmp_path / "link.txt").symlink_to(tmp_path.parent)
    first = render_key("pip-{hash:requirements.txt}-{env:PY}", str(tmp_path), {"PY": "3.11"})
    assert first.startswith("pip-") and first.endswith("-3.11")
    assert render_key("{env:PY}", str(tmp_path), {"PY": "a b"}).startswith("v")  # not shown raw
    (tmp_path / "requirements.txt").write_text("six==1.17\n")
    assert render_key("pip-{hash:requirements.txt}-{env:PY}", str(tmp_path), {"PY": "3.11"}) != first
    with pytest.raises(JobError, match="matches no file of the workspace"):
        render_key("{hash:none*.txt}", str(tmp_path), {})
    with pytest.raises(JobError, match="matches no file"):  # a link out of the workspace
        render_key("{hash:link.txt}", str(tmp_path), {})


def test_the_console_folds_services_and_shows_one_alone_on_request():
    events = [LogEvent("service", 1, 0, fields={"service": "db", "state": "ready", "message": "in 0.05s"}),
              LogEvent("out", 2, 0, stream="stdout", data=b"db says\n", fields={"service": "db"}),
              LogEvent("out", 3, 0, step="test", stream="stdout", data=b"step says\n")]

    def shown(**kw):
        out = io.StringIO()
        renderer = Renderer(out=out, err=out, **kw)
        for event in events:
            renderer.write(event)
        return out.getvalue()

    assert shown() == "--- service db: ready in 0.05s\nstep says\n"
    assert shown(service="db") == "db says\n"
