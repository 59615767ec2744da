"""Job files: what a valid file becomes, and one clear error per mistake (no root)."""

from __future__ import annotations

import glob
import os

import pytest

from jobs import JobFileError, JobSpec, load_job_file

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GOOD = """
name = "unit tests"
image = "busybox"
workspace = "."
timeout = "10m"
[limits]
memory = "256m"
cpus = 1
[env]
A = "1"
[[steps]]
name = "test"
run = "echo hi"
timeout = "30s"
continue_on_error = true
[results]
junit = ["report.xml"]
artifacts = ["logs/*.txt"]
"""


def write(tmp_path, text, name="job.toml"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_a_valid_file_becomes_a_frozen_spec(tmp_path):
    (spec,) = load_job_file(write(tmp_path, GOOD))
    assert spec.name == "unit tests" and spec.image == "busybox"
    assert spec.workspace == str(tmp_path) and spec.timeout == 600
    assert spec.limits == {"memory": 256 << 20, "cpus": 1.0}
    assert spec.steps[0].timeout == 30 and spec.steps[0].continue_on_error
    assert spec.results.junit == ("report.xml",) and spec.results.artifacts == ("logs/*.txt",)
    with pytest.raises(AttributeError):
        spec.name = "other"


def test_a_spec_survives_json(tmp_path):
    import json

    (spec,) = load_job_file(write(tmp_path, GOOD))
    assert JobSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec


def test_a_matrix_expands_to_one_job_per_combination(tmp_path):
    text = 'name = "m"\n[matrix]\nPY = ["3.11", "3.12"]\nDB = ["a", "b", "c"]\n' \
           '[[steps]]\nname = "s"\nrun = "true"\n'
    specs = load_job_file(write(tmp_path, text))
    assert len(specs) == 6
    assert specs[0].name == "m (PY=3.11, DB=a)" and specs[0].env["DB"] == "a"
    assert {(s.matrix["PY"], s.matrix["DB"]) for s in specs} == {(p, d) for p in ("3.11", "3.12")
                                                                 for d in "abc"}


def test_yaml_files_are_read_too(tmp_path):
    text = "name: y\nsteps:\n  - name: s\n    run: echo hi\n"
    (spec,) = load_job_file(write(tmp_path, text, "job.yaml"))
    assert spec.steps[0].run == "echo hi"


@pytest.mark.parametrize("path", sorted(glob.glob(os.path.join(ROOT, "examples", "*.toml"))))
def test_the_examples_load(path):
    assert load_job_file(path)


BAD = [
    ('name = "x"\n', "steps", "at least one [[steps]]"),
    ('[[steps]]\nname = "s"\nrun = "true"\n', "name", "missing: expected a non-empty string"),
    ('name = "x"\nstepz = 1\n[[steps]]\nname = "s"\nrun = "true"\n', "stepz", "unknown key (accepted: name, image"),
    ('name = "x"\ntimeout = "soon"\n[[steps]]\nname = "s"\nrun = "true"\n', "timeout", 'expected a duration like 90, "30s"'),
    ('name = "x"\n[limits]\nmemory = "lots"\n[[steps]]\nname = "s"\nrun = "true"\n', "limits.memory", "expected"),
    ('name = "x"\n[limits]\nswap = 1\n[[steps]]\nname = "s"\nrun = "true"\n', "limits.swap", "unknown key"),
    ('name = "x"\n[[steps]]\nname = "s"\n', "steps[0].run", "missing"),
    ('name = "x"\n[[steps]]\nname = "s"\nrun = "a"\n[[steps]]\nname = "s"\nrun = "b"\n', "steps[1].name", "unique"),
    ('name = "x"\n[[steps]]\nname = "s"\nrun = "true"\ncontinue_on_error = "yes"\n', "steps[0].continue_on_error", "true or false"),
    ('name = "x"\n[env]\n1BAD = "v"\n[[steps]]\nname = "s"\nrun = "true"\n', "env.1BAD", "invalid name"),
    ('name = "x"\n[[steps]]\nname = "s"\nrun = "true"\n[results]\njunit = ["/etc/passwd"]\n', "results.junit", "relative paths"),
    ('name = "x"\n[[steps]]\nname = "s"\nrun = "true"\n[results]\njunit = ["../r.xml"]\n', "results.junit", "inside the workspace"),
    ('name = "x"\nworkspace = "nope"\n[[steps]]\nname = "s"\nrun = "true"\n', "workspace", "is not a directory"),
    ('name = "x"\n[matrix]\nPY = []\n[[steps]]\nname = "s"\nrun = "true"\n', "matrix.PY", "non-empty list"),
    ('name = "x"\n[[steps]\n', None, "invalid TOML"),
    ('name = "x"\nbuild = "nope"\n[[steps]]\nname = "s"\nrun = "true"\n', "build", "is not a file"),
    ('name = "x"\nbuild = "../job.toml"\n[[steps]]\nname = "s"\nrun = "true"\n', "build",
     "is outside the job file's directory"),
    ('name = "x"\nbuild = "/etc/hostname"\n[[steps]]\nname = "s"\nrun = "true"\n', "build",
     "is outside the job file's directory"),
    ('name = "x"\nbuild = { file = "job.toml", cache = 1 }\n[[steps]]\nname = "s"\nrun = "true"\n',
     "build.cache", "unknown key (accepted: file, args, network, egress, target)"),
    ('name = "x"\nbuild = { args = {} }\n[[steps]]\nname = "s"\nrun = "true"\n', "build.file", "missing"),
    ('name = "x"\nbuild = { file = "job.toml", network = "host" }\n[[steps]]\nname = "s"\nrun = "true"\n',
     "build.network", "expected none, bridge or a network name"),
    ('name = "x"\nbuild = { file = "job.toml", args = { 1A = "v" } }\n[[steps]]\nname = "s"\nrun = "true"\n',
     "build.args.1A", "invalid name"),
]


@pytest.mark.parametrize("text, key, accepted", BAD)
def test_each_mistake_gets_one_error_naming_file_key_and_what_is_accepted(tmp_path, text, key, accepted):
    path = write(tmp_path, text)
    with pytest.raises(JobFileError) as info:
        load_job_file(path)
    message = str(info.value)
    assert message.startswith(f"{path}: {key + ': ' if key else ''}"), message
    assert accepted in message and "\n" not in message
    assert info.value.key == key


def test_build_names_a_sandboxfile_relative_to_the_job_file(tmp_path):
    (tmp_path / "img").mkdir()
    (tmp_path / "img/Sandboxfile").write_text("FROM busybox\n")
    text = 'name = "b"\nimage = "mine:1"\nbuild = "img/Sandboxfile"\n[[steps]]\nname = "s"\nrun = "true"\n'
    (spec,) = load_job_file(write(tmp_path, text))
    assert spec.build.file == str(tmp_path / "img/Sandboxfile") and spec.build.tag == "mine:1"
    assert spec.build.network == "none" and spec.build.args == {}
    table = text.replace('build = "img/Sandboxfile"', 'build = { file = "img/Sandboxfile", '
                         'args = { V = 2 }, network = "bridge", egress = true, target = "t" }')
    (spec,) = load_job_file(write(tmp_path, table))
    assert (spec.build.args, spec.build.network, spec.build.egress, spec.build.target) == (
        {"V": "2"}, "bridge", True, "t")
    import json

    assert JobSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec


def test_a_missing_file_says_so(tmp_path):
    with pytest.raises(JobFileError, match="cannot read"):
        load_job_file(str(tmp_path / "none.toml"))


def test_the_cli_prints_one_line_and_exits_125(tmp_path, capsys):
    from sandbox.cli import main

    path = write(tmp_path, 'name = "x"\n')
    assert main(["submit", path]) == 125
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"sandbox: error: {path}: steps:")
