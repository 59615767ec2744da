"""The host image is a view of this host for tests, not a copy of its keys.

It shows an allow-list of host directories and nothing else of the host;
below them, what holds secrets shows as empty files and directories
(``sandbox.images.hostmask``), and the sandbox may still write there; a bind
mount shows what it binds.
"""

from __future__ import annotations

import os

import pytest

from sandbox import Mount, SandboxSpec, lib_dir, run
from sandbox.images import builtin, hostmask

pytestmark = pytest.mark.root


def sh(script: str, **options):
    result = run(SandboxSpec(image="host", command=["sh", "-c", script], **options), log_file=False)
    assert result.exit_code == 0, result.stderr
    return result.stdout.decode()


def test_what_the_host_image_does_not_show():
    out = sh("for p in /root/.aws /root/.docker /root/.config/gcloud /home /run /srv /mnt /var/log "
             "/var/lib/sandbox /var/lib/redis; do [ -z \"$(ls -A $p 2>/dev/null)\" ] && echo \"$p none\"; "
             "done; ls -A /root")
    lines = out.splitlines()
    assert all(line.endswith(" none") for line in lines[:-1]) and len(lines) >= 10, out
    shown = {lines[-1]} if lines[-1] and not lines[-1].endswith(" none") else set()
    prefix_top = {p.split("/")[2] for p in builtin.host_dirs() if p.startswith("/root/")}
    assert shown <= prefix_top  # only the way to this Python's prefix, if it is under /root


def test_the_host_s_secrets_show_empty_and_stay_writable():
    hidden = [e for e in hostmask.hidden_entries(builtin.host_dirs()) if not e[1]]
    assert any(path == "/etc/shadow" for path, *_ in hidden)  # on every Debian host
    script = "; ".join(f"printf '%s %s\\n' {p} $(wc -c < {p})" for p, *_ in hidden)
    out = sh(script + "; echo 'root:*:1::::::' >> /etc/shadow && cat /etc/shadow")
    *sizes, written = out.splitlines()
    assert sizes and all(line.endswith(" 0") for line in sizes), sizes
    assert written == "root:*:1::::::"  # a write goes to the sandbox's layer


def test_any_hidden_path_shows_as_an_empty_file_or_directory_with_its_owner_and_mode(
        tmp_path, monkeypatch):
    """The mechanism on a host dir of the test's own: a file, a directory, a glob, a
    neighbour that stays visible, and a bind of the hidden directory that shows it."""
    shown = tmp_path / "shown"
    (shown / "keys").mkdir(parents=True)
    (shown / "keys/id_rsa").write_text("PRIVATE")
    (shown / "token").write_text("secret")
    os.chown(shown / "token", 1000, 1001)
    os.chmod(shown / "token", 0o640)
    (shown / "host_key_a").write_text("a")
    (shown / "readme").write_text("public")
    dirs = builtin.host_dirs()
    monkeypatch.setattr(builtin, "host_dirs", lambda: (*dirs, str(shown)))
    monkeypatch.setattr(hostmask, "HIDDEN", (*hostmask.HIDDEN, f"{shown}/token", f"{shown}/keys",
                                             f"{shown}/host_key_*"))
    out = sh(f"cd {shown}; stat -c '%a %u %g %s' token; echo \"[$(cat token host_key_a)]\"; "
             "echo \"[$(ls -A keys)]\"; cat readme; echo; ls /bound",
             mounts=(Mount(str(shown / "keys"), "/bound"),))
    assert out.split("\n") == ["640 1000 1001 0", "[]", "[]", "public", "id_rsa", ""], out


def test_the_installation_s_own_state_is_hidden_below_a_shown_dir(monkeypatch):
    top = os.path.dirname(str(lib_dir()))  # the suite's state root's parent: a temp dir
    dirs = builtin.host_dirs()
    monkeypatch.setattr(builtin, "host_dirs", lambda: (*dirs, top))
    assert os.listdir(lib_dir())  # the image store is there on the host
    assert sh(f"ls -A {lib_dir()} | wc -l").strip() == "0"


def test_the_hidden_entries_are_looked_for_again_only_when_what_holds_them_changes(
        tmp_path, monkeypatch):
    """Not for every sandbox: entries coming and going beside the state dirs (the pytest
    plugin's report dirs, in /dev/shm or /run, one per test) leave the masks as they are;
    a hidden entry that appears is found."""
    from sandbox import run_dir

    shown = tmp_path / "shown"
    shown.mkdir()
    host_dirs = (*builtin.host_dirs(), str(shown))
    monkeypatch.setattr(hostmask, "HIDDEN", (*hostmask.HIDDEN, f"{shown}/token"))
    looked = []
    real = hostmask.hidden_entries
    monkeypatch.setattr(hostmask, "hidden_entries", lambda dirs: looked.append(dirs) or real(dirs))
    first = hostmask.masks(host_dirs)
    assert len(looked) == 1 and not any(d == str(shown) for d, _ in first)
    for parent in {os.path.dirname(str(lib_dir())), os.path.dirname(str(run_dir()))}:
        beside = os.path.join(parent, f"beside-{os.getpid()}")
        os.mkdir(beside)
        os.rmdir(beside)
    assert hostmask.masks(host_dirs) == first and len(looked) == 1
    (shown / "token").write_text("secret")
    second = hostmask.masks(host_dirs)
    assert len(looked) == 2 and any(d == str(shown) for d, _ in second)
