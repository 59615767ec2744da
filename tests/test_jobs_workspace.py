"""A queued job's workspace: packed on the client, unpacked on the worker."""

from __future__ import annotations

import os

from jobs import pack_workspace
from jobs.workspace import JobDir


def test_links_a_worker_would_refuse_are_left_out_when_packing(tmp_path, monkeypatch):
    monkeypatch.setenv("SANDBOX_RUN_DIR", str(tmp_path / "run"))
    source = tmp_path / "src"
    (source / "pkg").mkdir(parents=True)
    (source / "pkg" / "mod.py").write_text("x = 1\n")
    (source / ".git").mkdir()
    os.symlink("/etc/hostname", source / "absolute")
    os.symlink("../../outside", source / "pkg" / "escapes")
    os.symlink("mod.py", source / "pkg" / "inside")
    with JobDir("packtest") as jdir:
        jdir.unpack(pack_workspace(str(source)))
        names = sorted(str(p.relative_to(jdir.workspace)) for p in jdir.workspace.rglob("*"))
        assert names == ["pkg", "pkg/inside", "pkg/mod.py"]
        assert (jdir.workspace / "pkg" / "inside").read_text() == "x = 1\n"
