"""A class's spec and its pieces without root: validation, the students' sandboxes, recordings."""

from __future__ import annotations

import json
import os

import pytest

from sandbox import SpecError, StateError
from server.classes.recording import Recorder, read_events
from server.classes.room import digest, new_secret
from server.classes.spec import DEFAULT_LIMITS, USERNS_AVAILABLE, ClassSpec, student_spec
from server.reruns import Workspaces


@pytest.mark.parametrize(("body", "field"), [
    ({"name": "Bad Name"}, "class name"), ({"name": "x" * 40}, "class name"),
    ({"students": 0}, "students"), ({"students": 201}, "students"), ({"students": True}, "students"),
    ({"image": ""}, "image"), ({"ttl": "soon"}, "ttl"), ({"ttl": "8d"}, "ttl"),
    ({"network": "host"}, "network"), ({"memory": "lots"}, "memory"), ({"cpus": -1}, "cpus"),
])
def test_bad_values_name_their_field(body, field):
    with pytest.raises(SpecError) as info:
        ClassSpec.from_request({"name": "intro", "students": 3, "image": "busybox", **body})
    assert info.value.field == field and "expected" in str(info.value)


def test_defaults_and_each_students_sandbox():
    spec = ClassSpec.from_request({"name": "intro", "students": 12, "image": "busybox", "ttl": "90m"})
    assert spec.ttl == 5400 and spec.limits.memory == 256 << 20 and spec.limits.cpus == 0.25
    assert spec.limits.pids == DEFAULT_LIMITS["pids"] and spec.network == "none"
    assert spec.student_names()[:2] == ["student-01", "student-02"] and len(spec.student_names()) == 12
    assert ClassSpec("big", 150, "busybox").student_names()[0] == "student-001"
    alone = student_spec(spec, "student-03", None)
    assert alone.name == "intro-student-03" and alone.hostname == "student-03"
    assert alone.network.mode == "none" and alone.mounts == () and alone.command == ("/bin/sh", "-i")
    assert spec.userns is USERNS_AVAILABLE


def test_a_class_network_and_a_home(tmp_path):
    spec = ClassSpec("intro", 2, "busybox", network="class", home_volume=True)
    box = student_spec(spec, "student-01", str(tmp_path))
    assert box.network.mode == "class-intro" and box.network.alias == "student-01"
    assert box.mounts[0].target == "/root" and not box.mounts[0].read_only


def test_students_sandboxes_get_a_user_namespace_of_their_own_by_default():
    """The engine has user namespaces (branch security): a class uses them unless told not to."""
    assert USERNS_AVAILABLE
    assert ClassSpec("intro", 2, "busybox").userns is True
    assert student_spec(ClassSpec("intro", 2, "busybox"), "student-01", None).userns == "auto"
    off = student_spec(ClassSpec("intro", 2, "busybox", userns=False), "student-01", None)
    assert off.userns == (os.environ.get("SANDBOX_USERNS") or "host")


def test_student_tokens_are_kept_as_digests():
    secret, sha = new_secret()
    assert secret.startswith("sbx_student_") and len(secret) > 40 and digest(secret) == sha != secret


def test_a_recording_is_asciicast_v2(tmp_path):
    from sandbox import LogRecord

    path = tmp_path / "s.1.cast"
    recorder = Recorder(path, title="intro/student-01 #1")
    recorder.input(b"echo hi\n")
    recorder.write(LogRecord("stdout", recorder.start + 0.25, b"hi\n"))
    recorder.resize(30, 100)
    recorder.close()
    recorder.input(b"after the end\n")  # dropped: the sandbox is gone
    header, events = read_events(path)
    assert header["version"] == 2 and header["width"] == 80 and header["height"] == 24
    assert [e[1:] for e in events] == [["i", "echo hi\n"], ["o", "hi\n"], ["r", "100x30"]]
    assert events[1][0] == 0.25 and oct(path.stat().st_mode & 0o777) == "0o600"
    assert json.loads(path.read_text().splitlines()[0])["title"] == "intro/student-01 #1"


def test_workspaces_for_a_rerun_are_bounded(tmp_path):
    kept = Workspaces(tmp_path, max_bytes=250)
    kept.keep(["a1", "a2"], b"x" * 100)  # one submission, two jobs: one file, linked
    kept.keep(["b1"], None)
    assert kept.get("a2") == b"x" * 100 and kept.get("b1") is None
    kept.keep(["c1"], b"y" * 200)        # over the bound: the oldest go
    assert kept.get("c1") == b"y" * 200
    with pytest.raises(StateError, match="cannot be run again"):
        kept.get("a1")
    with pytest.raises(StateError, match="invalid job id"):
        kept.get("../etc")
