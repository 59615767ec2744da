"""Classes through the daemon: a sandbox, a token and a terminal per student, and nothing else.

Real daemons, real sandboxes of busybox, the terminal WebSocket as the
student's page uses it: each student reaches only their own shell (not
another's through the API, the network or the filesystem), the teacher
watches or takes over, a reset starts a fresh sandbox (a home volume
survives it), the TTL and `sandbox class rm` remove everything, and every
session is recorded as asciicast v2.
"""

from __future__ import annotations

import json
import shutil
import socket
import time
from pathlib import Path

import httpx
import pytest

from .console_support import TerminalClient, class_name, console, refused  # noqa: F401 - fixture

pytestmark = pytest.mark.root


def seat_url(d, name: str, student: str, suffix: str = "/terminal") -> str:
    return f"{d.ws_url}/v1/classes/{name}/students/{student}{suffix}"


def test_each_student_reaches_only_their_own_shell(console):
    teacher = console.token("teacher", "run")
    name = class_name()
    room = console.make_class(teacher, name, students=2)
    one, two = room["students"]
    assert one["url"].endswith(f"/console/student/{name}/student-01#{one['token']}")
    shell = TerminalClient(seat_url(console, name, "student-01"), one["token"])
    try:
        assert b"hi\n" in shell.run("echo hi")
        shell.run("echo secret-of-one > /root/mine; ls /sys/class/net > /tmp/links")
        links = shell.run("cat /tmp/links")
        assert b"lo" in links and b"eth" not in links  # --network none: alone with its loopback
    finally:
        shell.close()
    # the second student's token opens neither the first's terminal nor anything of the API
    assert refused(seat_url(console, name, "student-01"), two["token"])
    assert refused(seat_url(console, name, "student-01"))  # no token at all
    with console.tcp(two["token"]) as c:
        assert c.get(f"/v1/classes/{name}/students/student-01").status_code == 404
        assert c.get(f"/v1/classes/{name}/students/student-02").json()["role"] == "owner"
        assert c.post(f"/v1/classes/{name}/students/student-01/reset").status_code == 404
        assert c.get("/v1/sandboxes").status_code == 403
        assert c.get("/v1/classes").status_code == 403
        assert c.get(f"/v1/classes/{name}").status_code == 403
        assert c.delete(f"/v1/classes/{name}").status_code == 403
    # nor through the filesystem: the second shell has its own root
    other = TerminalClient(seat_url(console, name, "student-02"), two["token"])
    try:
        assert b"No such file" in other.run("cat /root/mine 2>&1")
    finally:
        other.close()
    # another teacher does not see the class; the teacher's `sandbox ps` shows its sandboxes
    stranger = console.token("stranger", "run")
    with console.tcp(stranger) as c:
        assert c.get(f"/v1/classes/{name}").status_code == 404
        assert c.get("/v1/classes").json() == []
    with console.tcp(teacher) as c:
        names = {r["name"] for r in c.get("/v1/sandboxes").json()}
        assert {f"{name}-student-01", f"{name}-student-02"} <= names
        assert c.delete(f"/v1/classes/{name}").json()["ended"] is True


def test_students_on_the_class_network_cannot_reach_each_other(console):
    """``--network class``: an isolated network, one member per student; the host reaches
    each student's server, no other student does (by address or by name)."""
    teacher = console.token("teacher", "run")
    name = class_name()
    room = console.make_class(teacher, name, students=2, network="class")
    one, two = room["students"]
    with console.tcp(teacher) as c:
        row = next(n for n in c.get("/v1/networks").json() if n["name"] == f"class-{name}")
    assert row["isolated"] is True and row["members"] == 2
    first = TerminalClient(seat_url(console, name, "student-01"), one["token"])
    second = TerminalClient(seat_url(console, name, "student-02"), two["token"])
    try:
        address = first.run("ip -4 -o addr show eth0").split(b"inet ")[1].split(b"/")[0].decode()
        first.send("nc -ll -p 5000 -e echo from-one >/dev/null 2>&1 &\n")
        assert read_line_from(address, 5000) == b"from-one\n"  # it listens: the host gets in
        seen = second.run(f"nc -w 2 {address} 5000 </dev/null; echo byaddr=$?; "
                          "nc -w 2 student-01 5000 </dev/null; echo byname=$?")
        assert b"byaddr=1" in seen and b"byname=1" in seen, seen
        assert b"from-one" not in seen and b"refused" not in seen, seen  # not even a reset came
    finally:
        first.close()
        second.close()


def read_line_from(address: str, port: int) -> bytes:
    """The first line a server in a sandbox sends the host (retried until it listens)."""
    deadline = time.monotonic() + 30
    while True:
        try:
            with socket.create_connection((address, port), timeout=5) as conn:
                line = conn.makefile("rb").readline()
                if line:
                    return line
        except OSError:
            if time.monotonic() > deadline:
                raise
        time.sleep(0.05)


def test_the_teacher_watches_and_takes_over(console):
    teacher = console.token("teacher", "run")
    name = class_name()
    student = console.make_class(teacher, name, students=1)["students"][0]
    mine = TerminalClient(seat_url(console, name, "student-01"), student["token"])
    watch = TerminalClient(seat_url(console, name, "student-01") + "?mode=watch", teacher)
    try:
        mine.run("echo typed-by-student")
        watch.read_until(b"typed-by-student")  # the watcher sees what the student does
        watch.send("echo never-run\n")         # and cannot type
        take = TerminalClient(seat_url(console, name, "student-01") + "?mode=control", teacher)
        with console.tcp(teacher) as c:
            seat = c.get(f"/v1/classes/{name}/students/student-01").json()
        assert seat["holder"] == "teacher" and seat["connected"] == {"owner": 1, "teacher": 2}
        mine.send("echo from-student-while-held\n")
        take.run("echo from-teacher")
        take.close()
        with console.tcp(teacher) as c:  # the daemon lets the keyboard go once it sees the close
            deadline = time.monotonic() + 30
            while c.get(f"/v1/classes/{name}/students/student-01").json()["holder"] is not None:
                assert time.monotonic() < deadline, "the teacher still holds the keyboard"
                time.sleep(0.1)
        out = mine.run("echo student-again")
        assert b"from-teacher" in mine.seen and b"never-run\n" not in mine.seen
        assert b"from-student-while-held\n" not in mine.seen and b"student-again" in out
    finally:
        mine.close()
        watch.close()
    with console.tcp(teacher) as c:
        c.delete(f"/v1/classes/{name}")


def test_reset_gives_a_fresh_sandbox_and_the_home_volume_survives(console):
    teacher = console.token("teacher", "run")
    name = class_name()
    student = console.make_class(teacher, name, students=1, home_volume=True)["students"][0]
    url = seat_url(console, name, "student-01")
    shell = TerminalClient(url, student["token"])
    with console.tcp(teacher) as c:
        before = c.get(f"/v1/classes/{name}/students/student-01").json()["sandbox"]
    try:
        shell.run("echo kept > /root/notes; echo lost > /etc/scratch")
        with console.tcp(student["token"]) as c:  # a student may restart their own shell
            after = c.post(f"/v1/classes/{name}/students/student-01/reset").json()
        code, reason = shell.wait_closed()
        assert code == 4001 and "reset" in reason
    finally:
        shell.close()
    assert after["sandbox"] != before and after["generation"] == 2
    shell = TerminalClient(url, student["token"])
    try:
        out = shell.run("cat /root/notes /etc/scratch 2>&1")
        assert b"kept" in out and b"No such file" in out
    finally:
        shell.close()
    with console.tcp(teacher) as c:
        ids = {r["id"] for r in c.get("/v1/sandboxes?all=true").json()}
        assert before not in ids and after["sandbox"] in ids
        c.delete(f"/v1/classes/{name}")


def test_recordings_hold_the_session_and_go_with_the_class_unless_kept(console):
    teacher = console.token("teacher", "run")
    name = class_name()
    student = console.make_class(teacher, name, students=1, keep_recordings=True)["students"][0]
    shell = TerminalClient(seat_url(console, name, "student-01"), student["token"])
    try:
        shell.run("echo recorded-line")
    finally:
        shell.close()
    with console.tcp(teacher) as c:
        assert [r["n"] for r in c.get(f"/v1/classes/{name}/students/student-01/recordings").json()] == [1]
        cast = c.get(f"/v1/classes/{name}/students/student-01/recordings/1")
        assert cast.headers["content-type"].startswith("application/x-asciicast")
        done = c.delete(f"/v1/classes/{name}").json()
    kept = Path(done["recordings"])
    try:
        lines = cast.text.splitlines()
        header, events = json.loads(lines[0]), [json.loads(line) for line in lines[1:]]
        assert header["version"] == 2 and header["width"] > 0 and header["height"] > 0
        assert any(e[1] == "i" and "echo recorded-line" in e[2] for e in events)
        # the command's output (a pty ends its lines in \r\n, a pipe in \n)
        assert any(e[1] == "o" and "recorded-line\n" in e[2].replace("\r\n", "\n") for e in events)
        assert all(isinstance(e[0], float) for e in events)
        assert [p.name for p in kept.iterdir()] == ["student-01.1.cast"]
        assert not (kept.parent / "owner").exists()
    finally:
        shutil.rmtree(kept.parent)  # the kept recordings are the teacher's to remove


def test_at_the_ttl_everything_is_gone(console):
    teacher = console.token("teacher", "run")
    name = class_name()
    room = console.make_class(teacher, name, students=2, ttl="3s", network="class")
    token = room["students"][0]["token"]
    shell = TerminalClient(seat_url(console, name, "student-01"), token)
    try:
        code, _reason = shell.wait_closed(timeout=30)  # the TTL ends the shell
        assert code == 4000
    finally:
        shell.close()
    deadline = time.monotonic() + 15
    with console.tcp(teacher) as c:
        while c.get("/v1/classes").json() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert c.get("/v1/classes").json() == []
        assert not [r for r in c.get("/v1/sandboxes?all=true").json() if r["name"].startswith(name)]
        assert all(n["name"] != f"class-{name}" for n in c.get("/v1/networks").json())
    with httpx.Client(base_url=console.url, headers={"Authorization": f"Bearer {token}"}) as c:
        assert c.get(f"/v1/classes/{name}/students/student-01").status_code == 401


def test_class_rm_through_the_cli_and_bad_input(console):
    name = class_name()
    made = console.cli("class", "create", name, "--students", "2", "--image", "busybox", "--ttl", "10m")
    assert made.returncode == 0, made.stderr
    assert f"/console/student/{name}/student-02#sbx_student_" in made.stdout.decode()
    shown = console.cli("class", "show", name)
    assert shown.returncode == 0 and shown.stdout.decode().count("running") >= 2
    again = console.cli("class", "create", name, "--students", "1", "--image", "busybox")
    assert again.returncode == 125 and b"exists" in again.stderr
    assert console.cli("class", "rm", name).returncode == 0
    assert console.cli("class", "ls").stdout.decode().strip() == "NAME  IMAGE  STUDENTS  RUNNING  CONNECTED  LEFT"
    for args, word in ((("--students", "0"), b"students"), (("--students", "2", "--ttl", "soon"), b"ttl"),
                       (("--students", "2", "--memory", "lots"), b"memory")):
        bad = console.cli("class", "create", class_name(), "--image", "busybox", *args)
        assert bad.returncode == 125 and bad.stderr.count(b"\n") == 1 and word in bad.stderr, bad.stderr
    missing = console.cli("class", "create", class_name(), "--students", "2", "--image", "no-such-image")
    assert missing.returncode == 125 and b"no-such-image" in missing.stderr
    with console.unix() as c:
        assert c.get("/v1/classes").json() == []
        assert not [r for r in c.get("/v1/sandboxes").json() if r["name"] and r["name"].startswith("c")]
