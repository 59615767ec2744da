"""The plan a spec compiles to, asserted on as data (no root needed)."""

import os

import pytest

from sandbox import ImageError, SandboxSpec, SpecError, linux
from sandbox.images import Image, ImageConfig
from sandbox.linux.caps import CAPABILITIES, mask
from sandbox.planner import build_plan
from sandbox.pseudofs import MASKED_PATHS, READONLY_PATHS, pseudo_fs_ops
from sandbox.spec import DEFAULT_CAPABILITIES, Mount

IMAGE = Image("test", ("/images/test/rootfs",))


def plan_for(image=IMAGE, **changes):
    spec = SandboxSpec(image="test", **{"command": ["sh", "-c", "true"], **changes})
    return build_plan(spec, image, "abc", "/run/sb/abc", None)


def test_mounts_come_in_order_and_end_with_pivot_root():
    ops = plan_for().ops
    kinds = [op.kind for op in ops]
    assert kinds[0] == "propagation" and ops[0].args == ("/", linux.MS_REC | linux.MS_PRIVATE)
    assert kinds[-1] == "pivot_root"
    (overlay,) = [op for op in ops if op.kind == "overlay"]
    root, path, lowers, upper, work, _flags, hold, links = overlay.args
    assert (root, path, lowers) == ("/run/sb/abc/root", "/", ("/images/test/rootfs",))
    assert (upper, work, hold, links) == ("/run/sb/abc/upper", "/run/sb/abc/work", "/run/sb/abc", None)
    steps = [op.step for op in ops]
    assert steps.index("mount the writable layer (tmpfs)") < steps.index(overlay.step)


def test_spec_mounts_are_read_only_unless_asked(tmp_path):
    ops = plan_for(mounts=[Mount(str(tmp_path), "/rw", read_only=False),
                           Mount(str(tmp_path), "/ro")]).ops
    binds = {op.args[2]: op.args[3] for op in ops if op.kind == "bind"}
    assert binds == {"/rw": False, "/ro": True}


def test_host_dirs_get_an_overlay_each_with_the_image_layers_above_the_host(tmp_path):
    layer, skeleton = tmp_path / "layer", tmp_path / "skeleton"
    (layer / "usr/lib").mkdir(parents=True)
    (layer / "opt").symlink_to("/root")  # a link in a layer never makes a host path a lower dir
    skeleton.mkdir()
    image = Image("onhost", (str(layer), str(skeleton)), host_dirs=("/usr", "/opt"))
    overlays = [op.args for op in plan_for(image).ops if op.kind == "overlay"]
    assert [a[1:3] for a in overlays] == [
        ("/", (str(layer), str(skeleton))), ("/usr", (f"{layer}/usr", "/usr")), ("/opt", ("/opt",))]
    assert overlays[1][3:7] == ("/run/sb/abc/h0-upper", "/run/sb/abc/h0-work",
                                linux.MS_NOSUID | linux.MS_NODEV, None)


def test_deep_images_mount_by_short_links_when_asked_or_refuse_past_the_stack_limit(monkeypatch):
    layers = tuple(f"/store/layers/{i:064x}/rootfs" for i in range(120))
    links = tuple(f"l/{i:010d}" for i in range(120))
    deep = Image("deep", layers, links=links, link_base="/store")
    (overlay,) = [op for op in plan_for(deep).ops if op.kind == "overlay"]
    assert overlay.args[2] == layers and overlay.args[7] is None  # fsconfig on this kernel
    monkeypatch.setenv("SANDBOX_OVERLAY_MOUNT", "links")
    (overlay,) = [op for op in plan_for(deep).ops if op.kind == "overlay"]
    assert overlay.args[2] == links and overlay.args[7] == "/store" and "short links" in overlay.step
    with pytest.raises(ImageError, match="at most 500"):
        plan_for(Image("too-deep", layers * 5))


def test_the_image_config_gives_command_workdir_and_user_unless_the_spec_does(tmp_path):
    config = ImageConfig(entrypoint=("/bin/tool",), cmd=("--help",), workdir="/app", user="1:1",
                         env=("A=image",))
    image = Image("app", (str(tmp_path),), config=config, env=config.env_dict())
    plan = plan_for(image, command=[])
    assert plan.exec.argv == ("/bin/tool", "--help") and plan.exec.workdir == "/app"
    assert plan.exec.user == "1:1" and plan.exec.env["A"] == "image"
    plan = plan_for(image, command=["run"], workdir="/", user="0:0", env={"A": "spec"})
    assert plan.exec.argv == ("/bin/tool", "run") and plan.exec.workdir == "/"
    assert plan.exec.user == "0:0" and plan.exec.env["A"] == "spec"
    with pytest.raises(SpecError, match="has no CMD or ENTRYPOINT"):
        plan_for(command=[])


def _masks_and_read_only(ops):
    masked = {op.args[0].removeprefix("/run/sb/abc/root") for op in ops if op.kind == "mask"}
    readonly = {op.args[0].removeprefix("/run/sb/abc/root") for op in ops if op.kind == "readonly"}
    return masked, readonly


def test_runc_default_masks_and_read_only_paths():
    (step,) = [op for op in plan_for().ops if op.kind == "pseudo_fs"]
    root, empty_dir = step.args
    assert (root, empty_dir) == ("/run/sb/abc/root", "/run/sb/abc/empty")
    masked, readonly = _masks_and_read_only(pseudo_fs_ops(root, empty_dir))
    assert masked == set(MASKED_PATHS) and "/proc/kcore" in masked
    assert readonly == set(READONLY_PATHS) and "/proc/sys" in readonly


def test_pseudo_filesystems_come_before_the_binds_unless_a_bind_goes_into_proc_or_sys(tmp_path):
    steps = [op.step for op in plan_for(mounts=[Mount(str(tmp_path), "/data")]).ops]
    assert steps.index("mount /proc, /dev and /sys") < steps.index(f"bind mount {tmp_path}:/data")
    for target in ("/proc/driver", "/sys/kernel"):  # over /proc or /sys itself: refused (spec)
        ops = plan_for(mounts=[Mount(str(tmp_path), target)]).ops
        steps = [op.step for op in ops]
        assert "mount /proc, /dev and /sys" not in steps and "mount /proc" in steps
        # masked after the bind, as runc does: a bind cannot uncover a masked path
        assert steps.index(f"bind mount {tmp_path}:{target}") < steps.index("mask /proc/kcore")
        masked, readonly = _masks_and_read_only(ops)
        assert masked == set(MASKED_PATHS) and readonly == set(READONLY_PATHS)


def test_disk_limit_sizes_the_writable_layer():
    ops = plan_for(limits={"disk": "32m"}).ops
    layer = next(op for op in ops if op.step == "mount the writable layer (tmpfs)")
    assert f"size={32 << 20}" in layer.args[4]


def test_namespaces_and_network_modes():
    isolated = plan_for()
    assert isolated.unshare_flags & linux.CLONE_NEWNET
    assert any(op.kind == "loopback_up" for op in isolated.hooks)
    host = plan_for(network="host")
    assert not host.unshare_flags & linux.CLONE_NEWNET
    assert not any(op.kind == "loopback_up" for op in host.hooks)
    for flag in (linux.CLONE_NEWNS, linux.CLONE_NEWUTS, linux.CLONE_NEWIPC, linux.CLONE_NEWCGROUP):
        assert host.unshare_flags & flag


def test_capabilities_default_none_and_custom():
    assert plan_for().exec.keep_caps == mask(DEFAULT_CAPABILITIES)
    assert plan_for(capabilities=()).exec.keep_caps == 0
    assert plan_for(capabilities=["NET_ADMIN"]).exec.keep_caps == 1 << CAPABILITIES["NET_ADMIN"]
    assert not plan_for().exec.keep_caps & (1 << CAPABILITIES["SYS_ADMIN"])


def test_exec_plan_env_user_workdir():
    plan = plan_for(env={"A": "1"}, user="1000:1000", workdir="/work", hostname="h1")
    assert plan.exec.env["A"] == "1" and plan.exec.env["HOSTNAME"] == "h1" and "PATH" in plan.exec.env
    assert plan.exec.user == "1000:1000" and plan.exec.workdir == "/work"
    assert [op.kind for op in plan.hooks] == ["hostname", "loopback_up", "makedirs"]
    assert plan.exec.rlimits == (("core", 0, 0),)


def test_describe_prints_every_step():
    text = plan_for().describe()
    assert "pivot_root" in text and "mount /proc" in text and text.endswith("in /")
    assert os.linesep in text


def test_the_user_is_resolved_from_the_image_and_again_when_its_files_change(tmp_path):
    from sandbox.planner import resolve_ids

    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "group").write_text("root:x:0:\nstaff:x:50:\n")
    (etc / "passwd").write_text("alice:x:1000:50::/home/alice:/bin/sh\n")
    image = Image("t", (str(tmp_path),))
    spec = SandboxSpec(image="t", command=["true"], user="alice")
    assert resolve_ids(spec, image) == (1000, 50, (50,), "/home/alice")
    assert resolve_ids(spec, image) == (1000, 50, (50,), "/home/alice")  # from the cache
    (etc / "passwd").write_text("alice:x:1001:50::/home/alice2:/bin/sh\n")
    assert resolve_ids(spec, image) == (1001, 50, (50,), "/home/alice2")


def test_a_delegating_sandbox_gets_its_subtree_at_sys_fs_cgroup_and_the_hosts_cgroup_namespace():
    from sandbox.cgroups import CgroupV1, CgroupV2
    from sandbox.cgroups.base import parent_name
    from sandbox.spec import Limits

    parent = parent_name()

    spec = SandboxSpec(image="test", command=["true"], delegate_cgroup=True)
    mounts = {"memory": "/cg/memory", "pids": "/cg/pids", "cpu": "/cg/cpu,cpuacct",
              "cpuacct": "/cg/cpu,cpuacct", "devices": "/cg/devices", "freezer": "/cg/freezer"}
    v1 = CgroupV1(mounts).name("abc", Limits(cpus=1), delegate=True)
    plan = build_plan(spec, IMAGE, "abc", "/run/sb/abc", v1)
    assert not plan.unshare_flags & linux.CLONE_NEWCGROUP
    assert plan.exec.env["SANDBOX_CGROUP"] == "v1:/sys/fs/cgroup"
    # one directory per hierarchy of delegable controllers (not devices), named by them
    binds = [op.args for op in plan.ops if op.kind == "bind"]
    assert sorted(binds) == sorted([
        (f"/cg/memory/{parent}/abc/delegated", "/run/sb/abc/root", "/sys/fs/cgroup/memory", False),
        (f"/cg/pids/{parent}/abc/delegated", "/run/sb/abc/root", "/sys/fs/cgroup/pids", False),
        (f"/cg/cpu,cpuacct/{parent}/abc/delegated", "/run/sb/abc/root", "/sys/fs/cgroup/cpu,cpuacct",
         False),
        (f"/cg/freezer/{parent}/abc/delegated", "/run/sb/abc/root", "/sys/fs/cgroup/freezer", False)])
    kinds = [op.kind for op in plan.ops]
    tmpfs = next(i for i, op in enumerate(plan.ops) if op.args[1:3] == ("/run/sb/abc/root/sys/fs/cgroup", "tmpfs"))
    assert kinds.index("pseudo_fs") < tmpfs < kinds.index("bind") < kinds.index("readonly_mount")
    assert any(line.startswith(f"delegate /cg/memory/{parent}/abc/delegated") for line in plan.host_steps)

    v2 = CgroupV2("/cg2").name("abc", Limits(), delegate=True)
    plan = build_plan(spec, IMAGE, "abc", "/run/sb/abc", v2)
    assert plan.exec.env["SANDBOX_CGROUP"] == "v2:/sys/fs/cgroup"
    assert [op.args for op in plan.ops if op.kind == "bind"] == [
        (f"/cg2/{parent}/abc/delegated", "/run/sb/abc/root", "/sys/fs/cgroup", False)]
    assert "readonly_mount" not in [op.kind for op in plan.ops]
    assert plan.cgroup_procs == (f"/cg2/{parent}/abc/main/cgroup.procs",)

    plain = build_plan(spec.with_changes(delegate_cgroup=False), IMAGE, "abc", "/run/sb/abc",
                       CgroupV2("/cg2").name("abc", Limits()))
    assert plain.unshare_flags & linux.CLONE_NEWCGROUP and "SANDBOX_CGROUP" not in plain.exec.env
    assert plain.cgroup_procs == (f"/cg2/{parent}/abc/cgroup.procs",)


def test_a_root_view_is_bound_read_only_right_after_the_roots_overlay():
    """Before anything is mounted on the root: the view shows it without its mounts."""
    ops = plan_for(root_view=True).ops
    kinds = [op.kind for op in ops]
    overlay = kinds.index("overlay")
    view = ops[overlay + 1]
    assert view.kind == "bind" and view.args == ("/run/sb/abc/root", "/run/sb/abc/root",
                                                 "/run/sandbox/root", True)
    assert not any(op.kind == "bind" and op.args[2] == "/run/sandbox/root" for op in plan_for().ops)
