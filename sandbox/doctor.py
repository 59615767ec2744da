"""Host checks for `sandbox doctor`: what is missing, and the fix.

The peers' most common failure is a host that differs from the developer's:
cgroup v2 without delegated controllers, no overlayfs, namespaces off. Each
check here is a function returning a Check; none changes the host.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from . import state
from .linux.mountinfo import unescape
from .securejoin import within

if TYPE_CHECKING:
    from .cgroups import CgroupV2


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""
    required: bool = True


def check_root() -> Check:
    ok = os.geteuid() == 0
    return Check("root", ok, "running as root" if ok else f"running as uid {os.geteuid()}",
                 "run sandbox as root (sudo)")


def check_cgroups() -> Check:
    from .cgroups import CgroupV1, CgroupV2, detect
    from .errors import HostError

    try:
        hierarchy = detect()
    except HostError as exc:
        return Check("cgroups", False, exc.message, exc.hint or "")
    if isinstance(hierarchy, CgroupV2):
        return cgroup_v2_check(hierarchy)
    assert isinstance(hierarchy, CgroupV1)
    missing = [c for c in CgroupV1.ALWAYS if c not in hierarchy.mounts]
    hybrid = os.path.isdir("/sys/fs/cgroup/unified")
    detail = hierarchy.describe() + (" with an empty v2 tree (hybrid)" if hybrid else "")
    if missing:
        return Check("cgroups", False, f"{detail}; missing {', '.join(missing)}",
                     "mount the missing v1 controllers, or boot with systemd.unified_cgroup_hierarchy=1")
    return Check("cgroups", True, detail)


def cgroup_v2_check(hierarchy: CgroupV2, mountinfo: str = "/proc/self/mountinfo") -> Check:
    """A pure v2 host: the controllers the root has, whether ours reach the sandboxes,
    and a cgroup2 mount the engine can write to (inside a container it often is not)."""
    have = set(hierarchy.available())
    missing = [c for c in ("memory", "pids", "cpu") if c not in have]
    if missing:
        return Check("cgroups", False, f"cgroup v2 lacks {', '.join(missing)}",
                     "enable them: echo '+memory +pids +cpu' > /sys/fs/cgroup/cgroup.subtree_control")
    if _mounted_read_only(hierarchy.root, mountinfo):
        return Check("cgroups", False, f"{hierarchy.root} is mounted read-only: sandboxes "
                     "cannot have cgroups", f"mount -o remount,rw {hierarchy.root} (in a "
                     "container: give it a writable cgroup2 mount of its own)")
    return Check("cgroups", True, f"{hierarchy.describe()}; {hierarchy.delegation()}")


def _mounted_read_only(path: str, mountinfo: str) -> bool:
    """True when the last mount on ``path`` is read-only."""
    read_only = False
    with open(mountinfo) as f:
        for line in f:
            fields = line.partition(" - ")[0].split()
            if len(fields) > 5 and unescape(fields[4]) == path:
                read_only = "ro" in fields[5].split(",")
    return read_only


def check_devices() -> Check:
    """cgroup v2 has no devices controller: the engine loads an eBPF program instead."""
    from .cgroups import CgroupV2, detect
    from .cgroups.devices import load_check
    from .errors import HostError

    try:
        if not isinstance(detect(), CgroupV2):
            return Check("device filter", True, "the v1 devices controller holds the rules")
    except HostError:
        return Check("device filter", False, "no cgroups", "see the cgroups check")
    problem = load_check()
    if problem:
        return Check("device filter", False, f"cannot load the eBPF device program: {problem}",
                     "use a kernel with CONFIG_CGROUP_BPF, and allow bpf(2) to root "
                     "(seccomp or LSM profile of this host)")
    return Check("device filter", True, "eBPF device program loads (cgroup v2)")


def favordynmods_enabled(mountinfo: str = "/proc/self/mountinfo") -> bool | None:
    """Whether any cgroup root is mounted with favordynmods (None: no cgroup2 mount)."""
    found = None
    with open(mountinfo) as f:
        for line in f:
            if " - cgroup2 " in line:
                found = found or "favordynmods" in line.split(" - ")[1]
    return found


def check_migration_latency() -> Check:
    """cgroup_threadgroup_rwsem: without favordynmods each cgroup join waits an RCU grace period."""
    enabled = favordynmods_enabled()
    if enabled is None:
        return Check("cgroup migration", True, "no cgroup2 mount to tune", required=False)
    if enabled:
        return Check("cgroup migration", True, "favordynmods on: joining a cgroup is fast",
                     required=False)
    target = "/sys/fs/cgroup/unified" if os.path.isdir("/sys/fs/cgroup/unified") else "/sys/fs/cgroup"
    return Check("cgroup migration", False,
                 "favordynmods off: each sandbox start waits ~5-15 ms in the kernel",
                 f"mount -o remount,favordynmods {target}", required=False)


def check_filesystem(name: str, fix: str) -> Check:
    with open("/proc/filesystems") as f:
        ok = any(line.split()[-1] == name for line in f if line.strip())
    return Check(name, ok, "available" if ok else "not available in this kernel", fix)


def check_namespaces() -> Check:
    missing = [ns for ns in ("mnt", "pid", "net", "uts", "ipc", "cgroup")
               if not os.path.exists(f"/proc/self/ns/{ns}")]
    if missing:
        return Check("namespaces", False, f"kernel lacks {', '.join(missing)} namespaces",
                     "use a kernel built with CONFIG_NAMESPACES and each CONFIG_*_NS")
    return Check("namespaces", True, "mnt pid net uts ipc cgroup")


def why_unavailable() -> str | None:
    """None when this host can make sandboxes, else what is missing and the fix, in one line.

    The essential checks only (root, namespaces, cgroups, overlayfs): what
    callers ask before they try, e.g. to skip a test with the reason.
    """
    checks = (check_root, check_namespaces, check_cgroups,
              lambda: check_filesystem("overlay", "modprobe overlay"))
    for check in checks:
        result = check()
        if not result.ok:
            fix = f"; fix: {result.fix}" if result.fix else ""
            return f"this host cannot make sandboxes: {result.name}: {result.detail}{fix}"
    return None


def check_netlink() -> Check:
    import socket

    try:
        with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0):
            pass
    except OSError as exc:
        return Check("netlink", False, f"cannot open a netlink socket: {exc.strerror}",
                     "allow AF_NETLINK (seccomp/AppArmor profile of this host)")
    return Check("netlink", True, "rtnetlink usable")


def check_state_root() -> Check:
    for path in (state.lib_dir(), state.run_dir()):
        try:
            path.mkdir(parents=True, exist_ok=True)
            probe = path / f".doctor-{os.getpid()}"
            probe.write_text("")
            probe.unlink()
        except OSError as exc:
            return Check("state root", False, f"{path}: {exc.strerror}",
                         "set SANDBOX_STATE_DIR / SANDBOX_RUN_DIR to writable directories")
    return Check("state root", True, f"{state.lib_dir()} and {state.run_dir()} writable")


def filesystem_type(path: str, mountinfo: str = "/proc/self/mountinfo") -> str | None:
    """The type of the file system ``path`` is on (its nearest existing ancestor's)."""
    path = os.path.realpath(path)
    while not os.path.exists(path):
        path = os.path.dirname(path)
    best, kind = "", None
    with open(mountinfo) as f:
        for line in f:
            left, _, right = line.partition(" - ")
            fields = left.split()
            if len(fields) < 5 or not right:
                continue
            point = unescape(fields[4])
            if within(path, point) and len(point) >= len(best):  # the deepest; of stacked ones, the last
                best, kind = point, right.split()[0]
    return kind


def check_live_state() -> Check:
    """Live state on a disk costs each sandbox journal writes (and, with discard, a wait)."""
    run = str(state.run_dir())
    kind = filesystem_type(run)
    if kind in ("tmpfs", "ramfs"):
        return Check("live state", True, f"{run} is on {kind}", required=False)
    return Check("live state", False,
                 f"{run} is on {kind or 'an unknown file system'}, not a tmpfs: each sandbox's "
                 "state directory costs disk writes (0.2-1.2 ms a sandbox on a small VM)",
                 f"mount a tmpfs on {os.path.dirname(run)} (systemd mounts one on /run), or set "
                 "SANDBOX_RUN_DIR to a directory on one, e.g. under /dev/shm", required=False)


def check_busybox() -> Check:
    from .errors import ImageError
    from .images.builtin import find_static_busybox

    try:
        path = find_static_busybox()
    except ImageError as exc:
        return Check("busybox image", False, exc.message, "apt-get install busybox-static",
                     required=False)
    return Check("busybox image", True, f"static busybox at {path}", required=False)


def check_deep_images() -> Check:
    """Whether overlayfs takes lower dirs one by one (fsconfig lowerdir+, Linux 6.8+)."""
    from .linux import lowerdir_plus_supported

    if os.geteuid() == 0 and lowerdir_plus_supported():
        return Check("deep images", True, "overlayfs takes lowerdir+ (images of up to 500 layers)",
                     required=False)
    return Check("deep images", False, "no fsconfig(lowerdir+): images deeper than about 300 "
                 "layers cannot be mounted (shallower ones use short links)",
                 "a Linux 6.8 or later kernel", required=False)


def check_isolated_networks(release: str | None = None) -> Check:
    """Whether bridge ports can be isolated (IFLA_BRPORT_ISOLATED, Linux 4.18+): what keeps the
    members of an isolated network (`network create --isolated`, a class's) apart."""
    from .security.profile import kernel_version

    release = release or os.uname().release
    if (kernel_version(release) or (0, 0)) >= (4, 18):
        return Check("isolated networks", True, f"bridge ports can be isolated (Linux {release})",
                     required=False)
    return Check("isolated networks", False, f"Linux {release} cannot isolate bridge ports: a "
                 "sandbox on an isolated network (a class's, `network create --isolated`) fails "
                 "at its start", "a Linux 4.18 or later kernel", required=False)


def check_rlimits() -> Check:
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return Check("rlimits", True, f"nofile {soft}/{hard}; rlimits can only be lowered "
                 "without CAP_SYS_RESOURCE", required=False)


#: The kernel's per-user counts that a sandbox in the host's user namespace shares
#: with every other such sandbox and with the host's processes of its uid (root), each
#: with the fewest bytes of kernel memory one counted object costs. That memory is
#: charged to the memory cgroup of the process that made it, so a ceiling of at least
#: the host's memory over that cost is never reached before some sandbox's --memory is:
#: each sandbox is bounded by its own memory and nofile limits, not by a count it can
#: take from the others. The kernel takes no ceiling above INT_MAX. scripts/setup.sh
#: raises the ceilings to these figures.
PER_USER_COUNTS = (("fs/inotify/max_user_instances", 512), ("fs/inotify/max_user_watches", 64),
                   ("fs/epoll/max_user_watches", 64))
INT_MAX = 2**31 - 1


def per_user_ceilings_wanted(memory_bytes: int) -> dict[str, int]:
    """The least ceiling of each per-user count that memory reaches first."""
    return {name: min(memory_bytes // cost, INT_MAX) for name, cost in PER_USER_COUNTS}


def check_per_user_counts(memory_bytes: int | None = None,
                          read: Callable[[str], str | None] | None = None) -> Check:
    """Whether the per-user ceilings of inotify and epoll are above what memory reaches.

    Below it, one sandbox can hold all of root's inotify instances (128 by default) or
    watches and make `inotify_init` fail with EMFILE (file watchers, `tail -f`) for the
    other sandboxes and the host until it ends (README, "Resources stay contained").
    Not required: sandboxes run; they are just not contained in this.
    """
    read = read or _read_sysctl
    if memory_bytes is None:
        memory_bytes = _memory_total()
    short = []
    for name, wanted in per_user_ceilings_wanted(memory_bytes).items():
        value = read(name)
        if value is not None and int(value) < wanted:
            short.append((name.replace("/", "."), int(value), wanted))
    if not short:
        return Check("per-user counts", True, "inotify and epoll ceilings are above what "
                     "memory reaches: each sandbox is bounded by its own --memory and nofile",
                     required=False)
    said = ", ".join(f"{name} {value}" for name, value, _ in short)
    fix = "; ".join(f"sysctl -w {name}={wanted}" for name, _, wanted in short)
    return Check("per-user counts", False, f"{said}: every sandbox shares these with the "
                 "others and the host's root, and one can take them all",
                 f"run scripts/setup.sh, or: {fix} (and keep them in /etc/sysctl.d)",
                 required=False)


def _memory_total() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    raise OSError("no MemTotal in /proc/meminfo")


def check_user_namespaces() -> Check:
    """Whether `--userns=auto` works here (a busybox sandbox is started with it) and is the
    default (SANDBOX_USERNS=auto).

    Without it, every sandbox runs as the host's root: a process that escapes its
    other walls is root on the host (README, "User namespaces"). Never required:
    sandboxes without it are what the defaults make.
    """
    from .errors import ImageError, SandboxError

    if os.geteuid() != 0:
        return Check("user namespaces", True, "not checked: it starts a sandbox, which needs root",
                     required=False)
    from .runtime import run
    from .spec import SandboxSpec

    try:
        result = run(SandboxSpec(image="busybox", command=("true",), userns="auto"))
        if result.exit_code != 0:
            raise SandboxError(f"`true` exited {result.exit_code} in it")
    except ImageError as exc:
        return Check("user namespaces", True, f"not checked: no busybox image to start ({exc.message})",
                     required=False)
    except (SandboxError, OSError) as exc:
        why, hint = (exc.message, exc.hint) if isinstance(exc, SandboxError) else (str(exc), None)
        return Check("user namespaces", False, f"--userns=auto does not work here: {why}",
                     hint or "see README, \"User namespaces\": the kernels and file systems "
                     "it needs", required=False)
    default = os.environ.get("SANDBOX_USERNS")
    if default == "auto":
        return Check("user namespaces", True, "--userns=auto works and is the default "
                     "(SANDBOX_USERNS=auto): each sandbox's root is a uid range of its own")
    said = f"SANDBOX_USERNS={default}" if default else "SANDBOX_USERNS unset"
    return Check("user namespaces", True, f"--userns=auto works here; not the default "
                 f"({said}), so sandboxes run as the host's root: set SANDBOX_USERNS=auto "
                 "where untrusted code runs (class sandboxes have it already)", required=False)


def _read_sysctl(name: str) -> str | None:
    try:
        with open(f"/proc/sys/{name}") as f:
            return f.read().strip()
    except OSError:
        return None


def check_redis(url: str) -> Check:
    from .redact import redact_url

    shown = redact_url(url)
    try:
        import redis

        redis.Redis.from_url(url, socket_connect_timeout=2).ping()
    except ImportError:
        return Check("redis", False, "the redis package is not installed", "pip install redis")
    except Exception as exc:
        fix = ("fix the password in the URL" if "auth" in type(exc).__name__.lower()
               else "start redis-server or fix the URL")
        return Check("redis", False, f"{shown}: {exc}", fix)
    return Check("redis", True, f"{shown} answers")


def run_checks(redis_url: str | None = None) -> Iterator[Check]:
    checks: list[Callable[[], Check]] = [
        check_root, check_cgroups, check_devices,
        lambda: check_filesystem("overlay", "modprobe overlay"),
        lambda: check_filesystem("tmpfs", "use a kernel with CONFIG_TMPFS"),
        check_namespaces, check_netlink, check_state_root, check_live_state, check_busybox,
        check_deep_images, check_isolated_networks, check_rlimits, check_migration_latency,
        check_per_user_counts, check_user_namespaces,
    ]
    if redis_url:
        checks.append(lambda: check_redis(redis_url))
    for check in checks:
        yield check()
