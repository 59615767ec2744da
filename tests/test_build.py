"""`sandbox build`: images from a Sandboxfile, run as built, and the build cache's rules.

Every build goes through the command as a user runs it; what the image holds
is checked by running it.
"""

from __future__ import annotations

import pytest

from .build_support import (
    build,
    built_id,
    forget_new_tags,  # noqa: F401 - a fixture, used by pytestmark
    make_context,
    step_states,
    store_work_dirs,
)
from .helpers import sandbox_cli

pytestmark = [pytest.mark.root, pytest.mark.usefixtures("forget_new_tags")]

APP = """\
FROM busybox
COPY files /srv/files
RUN ls /srv/files | wc -l > /srv/count
ENV GREETING=hello
WORKDIR /srv
USER nobody
CMD ["sh", "-c", "echo $GREETING $(pwd) $(id -u) $(cat count)"]
"""


def test_a_built_image_runs_its_cmd_with_its_env_workdir_and_user(tmp_path):
    files = {f"files/f{i}.txt": f"file {i}\n" for i in range(20)}
    ctx = make_context(tmp_path, {"Sandboxfile": APP, **files})
    out = build(ctx, "-t", "app:1")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.decode().splitlines()
    assert lines[0] == "[1/7] FROM busybox"
    assert "[2/7] COPY files /srv/files" in lines and "[7/7] CMD" in lines[-2]
    assert step_states(out.stdout) == {2: "DONE", 3: "DONE"}
    image_id = built_id(out.stdout)
    run = sandbox_cli("run", "app:1")
    assert run.returncode == 0, run.stderr
    assert run.stdout == b"hello /srv 65534 20\n"
    listed = sandbox_cli("images").stdout.decode()
    assert any(line.split()[:3] == ["app", "1", image_id[7:19]] for line in listed.splitlines())


def test_a_rebuild_with_nothing_changed_reuses_every_step_and_the_image(tmp_path):
    ctx = make_context(tmp_path, {"Sandboxfile": APP, "files/a": "a"})
    first = build(ctx, "-t", "same")
    second = build(ctx, "-t", "same")
    assert second.returncode == 0, second.stderr
    assert step_states(second.stdout) == {2: "CACHED", 3: "CACHED"}
    assert built_id(second.stdout) == built_id(first.stdout)
    quiet = build(ctx, "-q", "-t", "same")
    assert quiet.stdout.decode().strip() == built_id(first.stdout)


CHAIN = """\
ARG V=1
FROM busybox
COPY a.txt /a.txt
RUN cat /a.txt > /copy-a
ARG V
COPY b.txt /b.txt
RUN echo "$V $(cat /b.txt)" > /out
RUN cat /out
"""


@pytest.mark.parametrize("change, rebuilt_from", [
    ("file b", 5),          # a changed file: its COPY and what follows
    ("arg", 6),             # a changed ARG: from its first use on (RUN has it in its env)
    ("instruction", 6),     # a changed instruction: itself and what follows
    ("file a", 2),
])
def test_a_change_rebuilds_exactly_the_steps_after_it(tmp_path, change, rebuilt_from):
    ctx = make_context(tmp_path, {"Sandboxfile": CHAIN, "a.txt": "A", "b.txt": "B"})
    assert build(ctx, "-t", "chain").returncode == 0
    args = ["-t", "chain"]
    if change == "file b":
        (ctx / "b.txt").write_text("B2")
    elif change == "file a":
        (ctx / "a.txt").write_text("A2")
    elif change == "arg":
        args += ["--build-arg", "V=2"]
    else:
        (ctx / "Sandboxfile").write_text(CHAIN.replace('echo "$V', 'echo "v=$V'))
    out = build(ctx, *args)
    assert out.returncode == 0, out.stderr
    layer_steps = (2, 3, 5, 6, 7)  # 1 is FROM, 4 the ARG in the stage
    want = {n: ("DONE" if n >= rebuilt_from else "CACHED") for n in layer_steps}
    assert step_states(out.stdout) == want
    again = build(ctx, *args)
    assert step_states(again.stdout) == dict.fromkeys(layer_steps, "CACHED")


def test_no_cache_runs_every_step_again(tmp_path):
    ctx = make_context(tmp_path, {"Sandboxfile": CHAIN, "a.txt": "A", "b.txt": "B"})
    assert build(ctx, "-t", "nocache").returncode == 0
    out = build(ctx, "-t", "nocache", "--no-cache")
    assert step_states(out.stdout) == dict.fromkeys((2, 3, 5, 6, 7), "DONE")


def test_deleted_files_and_replaced_directories_stay_gone(tmp_path):
    ctx = make_context(tmp_path, {"Sandboxfile": """\
FROM busybox
RUN rm /bin/vi && mkdir -p /data/old && echo x > /data/old/f
RUN rm -rf /etc /data && mkdir /etc /data && echo only > /etc/only
"""})
    assert build(ctx, "-t", "whiteouts").returncode == 0
    out = sandbox_cli("run", "whiteouts", "--", "sh", "-c",
                      "ls /etc /data; test -e /bin/vi && echo vi is back")
    assert out.stdout == b"/data:\n\n/etc:\nonly\n", out.stderr


def test_a_failing_step_stops_the_build_with_its_status_and_makes_no_image(tmp_path):
    ctx = make_context(tmp_path, {"Sandboxfile": """\
FROM busybox
RUN echo kept > /kept
RUN for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14; do echo line $i; done; exit 7
RUN echo never
"""})
    out = build(ctx, "-t", "broken")
    assert out.returncode == 7
    assert step_states(out.stdout) == {2: "DONE", 3: "ERROR"}
    assert b"never" not in out.stdout
    err = out.stderr.decode()
    assert "line 14" in err and "line 2\n" not in err  # the last lines, not all of them
    assert err.splitlines()[-1].startswith("sandbox: error: ") and "Sandboxfile:3: RUN" in err
    assert "exit code 7" in err
    assert b"broken" not in sandbox_cli("images").stdout
    assert store_work_dirs() == []
    again = build(ctx, "-t", "broken")  # what succeeded is cached
    assert step_states(again.stdout)[2] == "CACHED"


@pytest.mark.parametrize("line, message", [
    ("COPY ../outside /x", "'../outside' is outside the build context"),
    ("COPY /etc/passwd /x", "'/etc/passwd' is an absolute path"),
    ("COPY link /x", "'link' is a symbolic link pointing outside the build context"),
    ("COPY missing /x", "'missing' not found in the build context"),
    ("COPY secret.txt /x", "'secret.txt' is excluded by the context's ignore file"),
    ("VOLUME /data", "VOLUME is not supported"),
])
def test_bad_sources_and_instructions_get_one_line_and_125(tmp_path, line, message):
    ctx = make_context(tmp_path / "ctx", {"Sandboxfile": f"FROM busybox\n{line}\n",
                                           "secret.txt": "s", ".dockerignore": "secret.txt\n"})
    (tmp_path / "outside").write_text("host file")
    (ctx / "link").symlink_to("/etc/passwd")
    out = build(ctx, "-t", "refused")
    assert out.returncode == 125
    first, quoted = out.stderr.decode().splitlines()
    assert first.startswith("sandbox: error: ") and "Sandboxfile:2: " in first and message in first
    assert quoted.endswith(f"2 | {line}")
    assert store_work_dirs() == []


def test_add_unpacks_a_tar_and_copy_sets_owner_and_mode(tmp_path):
    import io
    import tarfile

    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w:gz") as tar:
        info = tarfile.TarInfo("pkg/bin/tool")
        info.size, info.mode, info.uid = 3, 0o755, 1000
        tar.addfile(info, io.BytesIO(b"hi\n"))
    ctx = make_context(tmp_path, {"Sandboxfile": """\
FROM busybox
ADD pkg.tar.gz /opt/
COPY --chown=nobody:nogroup --chmod=640 conf.ini /etc/app/
ADD conf.ini /etc/plain.ini
""", "pkg.tar.gz": data.getvalue(), "conf.ini": "[app]\n"})
    assert build(ctx, "-t", "added").returncode == 0
    out = sandbox_cli("run", "added", "--", "sh", "-c",
                      "stat -c '%n %u %a' /opt/pkg/bin/tool /etc/app/conf.ini /etc/plain.ini /opt")
    assert out.stdout.decode().split("\n")[:4] == [
        "/opt/pkg/bin/tool 1000 755", "/etc/app/conf.ini 65534 640", "/etc/plain.ini 0 644",
        "/opt 0 755"], out.stderr


def test_multi_stage_copies_from_an_earlier_stage_and_builds_only_what_the_target_needs(tmp_path):
    ctx = make_context(tmp_path, {"Sandboxfile": """\
FROM busybox AS builder
WORKDIR /src
COPY main.sh ./
RUN sh main.sh > /artifact

FROM busybox AS unused
RUN echo this stage is never built

FROM scratch
COPY --from=builder /artifact /artifact
COPY --from=builder /bin/busybox /bin/busybox
ENTRYPOINT ["/bin/busybox"]
CMD ["cat", "/artifact"]
""", "main.sh": "echo made by the builder\n"})
    out = build(ctx, "-t", "staged")
    assert out.returncode == 0, out.stderr
    assert b"never built" not in out.stdout
    run = sandbox_cli("run", "staged")
    assert run.stdout == b"made by the builder\n", run.stderr
    listed = set(sandbox_cli("run", "staged", "--", "ls", "/").stdout.split())
    assert listed == {b"artifact", b"bin", b"dev", b"proc", b"sys", b"tmp"}  # + mount points


def test_from_host_writes_under_usr_into_the_image_and_not_the_host(tmp_path):
    ctx = make_context(tmp_path, {"Sandboxfile": """\
FROM host
RUN mkdir -p /usr/local/share/sandbox-build-test && echo from the build > /usr/local/share/sandbox-build-test/f
"""})
    out = build(ctx, "-t", "onhost")
    assert out.returncode == 0, out.stderr
    run = sandbox_cli("run", "onhost", "--", "cat", "/usr/local/share/sandbox-build-test/f")
    assert run.stdout == b"from the build\n", run.stderr
    import os

    assert not os.path.exists("/usr/local/share/sandbox-build-test")


def test_dry_run_prints_the_plan_and_builds_nothing(tmp_path):
    ctx = make_context(tmp_path, {"Sandboxfile": APP, "files/a": "a"})
    out = build(ctx, "--dry-run", "-t", "dry")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith(b"target stage-0, 7 steps\n")
    assert b"copy [\"files\"] from context to path /srv/files" in out.stdout
    assert b"dry" not in sandbox_cli("images").stdout


def test_a_run_whose_command_cannot_start_fails_as_a_shell_would(tmp_path):
    ctx = make_context(tmp_path, {"Sandboxfile": 'FROM busybox\nRUN ["/no/such/tool"]\n'})
    out = build(ctx, "-t", "nocmd")
    assert out.returncode == 127
    last = out.stderr.decode().splitlines()[-1]
    assert last.startswith("sandbox: error: ") and "Sandboxfile:2: RUN" in last
    assert "command not found: '/no/such/tool'" in last


@pytest.mark.parametrize("args, message", [
    (("-t", "Bad Name"), b"invalid"),
    (("-t", "busybox"), b"reserved"),
    (("--network", "none", "--egress"), b"egress"),
    (("-f", "/nonexistent/Sandboxfile"), b"/nonexistent/Sandboxfile: cannot read"),
])
def test_bad_options_get_one_line_and_125(tmp_path, args, message):
    ctx = make_context(tmp_path, {"Sandboxfile": "FROM busybox\n"})
    out = build(ctx, *args)
    assert out.returncode == 125 and out.stderr.count(b"\n") == 1 and message in out.stderr, out.stderr
