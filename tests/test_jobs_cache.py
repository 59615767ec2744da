"""Job caches on a real worker host: restored before the steps, saved after a passing job,
one entry per key, capped with least-recently-used eviction, links never followed."""

from __future__ import annotations

import os

import pytest

from jobs import load_job_file, run_job
from jobs.cache import entries, remove_all, store_dir

from .jobs_support import job_file, sandbox_cmd

pytestmark = pytest.mark.root


@pytest.fixture(autouse=True)
def no_caches():
    remove_all()
    yield
    remove_all()


def cached_job(tmp_path, run: str, key: str = "k-{hash:lock.txt}", lock: str = "v1",
               paths: str = '["/root/.cache/demo", "build"]', name: str = "cached"):
    path = job_file(tmp_path, f"""
        name = "{name}"
        image = "busybox"
        workspace = "ws"
        [cache]
        key = "{key}"
        paths = {paths}
        [[steps]]
        name = "use"
        run = "{run}"
    """, {"lock.txt": lock})
    (spec,) = load_job_file(path)
    events = []
    result = run_job(spec, on_event=events.append)
    out = b"".join(e.data for e in events if e.kind == "out")
    notes = [e.data.decode() for e in events if e.kind == "note"]
    return result, out, notes


WRITE = "ls /root/.cache/demo build; echo one > /root/.cache/demo/a; echo two > build/b"


def test_a_cache_is_saved_after_a_passing_job_and_restored_for_the_same_key(tmp_path):
    result, out, notes = cached_job(tmp_path, WRITE)
    assert result.status == "passed" and out == b"/root/.cache/demo:\n\nbuild:\n"
    assert any("not found" in n for n in notes) and any(": saved (" in n for n in notes)
    (entry,) = entries()
    assert entry.paths == ("/root/.cache/demo", "/workspace/build") and entry.size == 8
    result, out, notes = cached_job(tmp_path, "cat /root/.cache/demo/a build/b")
    assert result.status == "passed" and out == b"one\ntwo\n"
    assert any(n.endswith(": restored") for n in notes) and not any("saved" in n for n in notes)


def test_a_cache_never_leaks_to_another_key(tmp_path):
    cached_job(tmp_path, WRITE)
    result, out, _ = cached_job(tmp_path, "ls -A /root/.cache/demo build", lock="v2")
    assert result.status == "passed" and out == b"/root/.cache/demo:\n\nbuild:\n"
    assert len(entries()) == 2


def test_a_failing_job_saves_nothing_and_a_hit_is_never_overwritten(tmp_path):
    result, _, _ = cached_job(tmp_path, "echo bad > /root/.cache/demo/a; false")
    assert result.status == "failed" and entries() == []
    cached_job(tmp_path, WRITE)
    (first,) = entries()
    poisoner = "echo poisoned > /root/.cache/demo/a"
    assert cached_job(tmp_path, poisoner)[0].status == "passed"
    result, out, _ = cached_job(tmp_path, "cat /root/.cache/demo/a")
    assert out == b"one\n" and [e.id for e in entries()] == [first.id]


def test_links_in_a_cache_stay_links_and_are_never_followed(tmp_path):
    run = ("ln -s /etc /root/.cache/demo/etc; ln -s ../../etc/hostname build/host; "
           "echo x > /root/.cache/demo/file")
    assert cached_job(tmp_path, run)[0].status == "passed"
    (entry,) = entries()
    stored = store_dir() / entry.id
    assert os.readlink(stored / "0" / "etc") == "/etc"  # a link, not a copy of the host's /etc
    assert set(os.listdir(stored / "0")) == {"etc", "file"}
    assert os.readlink(stored / "1" / "host") == "../../etc/hostname"
    _, out, _ = cached_job(tmp_path, "readlink /root/.cache/demo/etc; readlink build/host")
    assert out == b"/etc\n../../etc/hostname\n"


def test_the_store_keeps_to_its_cap_evicting_the_least_recently_used(tmp_path, monkeypatch):
    monkeypatch.setenv("SANDBOX_CACHE_SIZE", "100k")
    fill = "head -c 40000 /dev/zero > /root/.cache/demo/blob"
    for lock in ("a", "b"):
        cached_job(tmp_path, fill, lock=lock)
    cached_job(tmp_path, "true", lock="a")  # a hit: "a" is now the most recently used
    _, _, notes = cached_job(tmp_path, fill, lock="c")
    kept = {e.key for e in entries()}
    assert len(kept) == 2 and sum(e.size for e in entries()) <= 100_000
    evicted = [n for n in notes if "evicted" in n]
    assert len(evicted) == 1 and evicted[0].split()[1] not in kept
    _, _, notes = cached_job(tmp_path, "head -c 200000 /dev/zero > /root/.cache/demo/big", lock="d")
    assert any("not saved" in n and "size limit" in n for n in notes) and len(entries()) == 2


def test_cache_ls_and_rm_remove_one_key_in_one_command(tmp_path):
    cached_job(tmp_path, WRITE)
    cached_job(tmp_path, WRITE, lock="v2")
    listing = sandbox_cmd("cache", "ls")
    assert listing.returncode == 0 and listing.stdout.startswith("KEY")
    key = entries()[0].key
    assert key in listing.stdout and "/root/.cache/demo, /workspace/build" in listing.stdout
    removed = sandbox_cmd("cache", "rm", key)
    assert removed.returncode == 0 and removed.stdout.startswith(f"removed {key} (")
    assert key not in {e.key for e in entries()} and len(entries()) == 1
    missing = sandbox_cmd("cache", "rm", key)
    assert missing.returncode == 125 and missing.stderr.count("\n") == 1
    assert f"no cache '{key}' on this host" in missing.stderr
    assert sandbox_cmd("cache", "rm", "--all").returncode == 0 and entries() == []
