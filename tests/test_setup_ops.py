"""The plan's steps against a recording stand-in for the Kernel (no root)."""

import os

import pytest

from sandbox import linux
from sandbox.plan import Op
from sandbox.process import steps
from sandbox.process.steps import StepFailed
from sandbox.securejoin import secure_join

from .kernel_recorder import RecordingKernel

MOUNTS = ("mount", "mount_setattr", "umount", "pivot_root")


def Recorder(fail_on: str | None = None, files_under: str | None = None) -> RecordingKernel:
    return RecordingKernel(fail_on=fail_on, files_under=files_under)


def run_ops(ops, sys):
    steps.run(ops, sys)


def mount_calls(rec: RecordingKernel) -> list[tuple]:
    return [call for call in rec.calls if call[0] in MOUNTS]


def test_bind_read_only_goes_all_the_way_down(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    root = tmp_path / "root"
    root.mkdir()
    rec = Recorder(files_under=str(tmp_path))
    run_ops([Op("bind", (str(src), str(root), "/data", True), "bind")], sys=rec)
    assert (root / "data").is_dir()
    calls = mount_calls(rec)
    assert calls[0] == ("mount", str(src), str(root / "data"), None, linux.MS_BIND | linux.MS_REC, None)
    name, _path, attrs, recursive = calls[1]
    assert name == "mount_setattr" and recursive and attrs & linux.MOUNT_ATTR_RDONLY


def test_bind_read_write_is_not_read_only(tmp_path):
    (tmp_path / "root").mkdir()
    rec = Recorder(files_under=str(tmp_path))
    run_ops([Op("bind", (str(tmp_path), str(tmp_path / "root"), "/rw", False), "bind")], sys=rec)
    assert not mount_calls(rec)[1][2] & linux.MOUNT_ATTR_RDONLY


def test_a_symlink_in_the_image_cannot_lead_a_bind_out(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    os.symlink("/etc", root / "work")  # absolute: means the image's /etc, not the host's
    os.symlink("../../../..", root / "up")
    assert secure_join(str(root), "/work/x") == str(root / "etc" / "x")
    assert secure_join(str(root), "/up/etc") == str(root / "etc")
    assert secure_join(str(root), "/a/../../b") == str(root / "b")


def test_symlink_loops_are_an_error(tmp_path):
    os.symlink("b", tmp_path / "a")
    os.symlink("a", tmp_path / "b")
    with pytest.raises(OSError):
        secure_join(str(tmp_path), "/a")


def test_first_failure_stops_and_names_the_step(tmp_path):
    rec = Recorder(fail_on="mount")
    ops = [Op("mount", ("proc", str(tmp_path), "proc", 0, None), "mount /proc"),
           Op("hostname", ("h",), "set hostname h")]
    with pytest.raises(StepFailed) as info:
        run_ops(ops, sys=rec)
    assert info.value.step == "mount /proc"
    assert [c[0] for c in rec.calls] == ["mount"]


def test_mask_hides_files_and_dirs(tmp_path):
    (tmp_path / "file").write_text("secret")
    (tmp_path / "dir").mkdir()
    rec = Recorder()
    run_ops([Op("mask", (str(tmp_path / "file"), "/dev/null", "/empty"), "mask file"),
             Op("mask", (str(tmp_path / "dir"), "/dev/null", "/empty"), "mask dir"),
             Op("mask", (str(tmp_path / "absent"), "/dev/null", "/empty"), "mask absent")], sys=rec)
    assert rec.calls[0][:3] == ("mount", "/dev/null", str(tmp_path / "file"))
    assert rec.calls[1][:3] == ("mount", "/empty", str(tmp_path / "dir"))
    assert rec.calls[2][0] == "mount_setattr" and rec.calls[2][2] & linux.MOUNT_ATTR_RDONLY
    assert len(rec.calls) == 3


def test_pseudo_fs_without_a_staged_set_makes_everything_in_place_and_names_the_inner_step(tmp_path):
    from sandbox.pseudofs import pseudo_fs_ops

    root = tmp_path / "root"
    for name in ("proc", "dev", "sys"):
        (root / name).mkdir(parents=True)
    rec = Recorder()
    run_ops([Op("pseudo_fs", (str(root), "/empty"), "mount /proc, /dev and /sys")], sys=rec)
    mounts = [call[2] for call in rec.calls if call[0] == "mount"]
    expected = [op.args[1] for op in pseudo_fs_ops(str(root), "/empty") if op.kind == "mount"]
    assert mounts[:len(expected)] == expected and mounts[0] == str(root / "proc")
    with pytest.raises(StepFailed) as info:
        run_ops([Op("pseudo_fs", (str(tmp_path / "none"), "/empty"), "mount /proc, /dev and /sys")],
                sys=Recorder(fail_on="mount"))
    assert info.value.step == "mount /proc"
