#!/usr/bin/env bash
# Install what sandbox needs on a Debian machine (as root) and the package itself.
# --vm: also what the VM test lane needs (scripts/vm-test): qemu, the kernel pinned in
# scripts/vm/config and virtme-ng. --tests: also what the test suite takes from the
# network ahead of time (scripts/test-cache.sh, a bootstrapped Debian base), as .ci/run does.
# --runtime: only what a worker or a daemon runs with (the Containerfile's image): no peers,
# no test extra, the package installed as a copy rather than editable.
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive
vm=0
tests=0
runtime=0
for arg in "$@"; do
    case "$arg" in
        --vm) vm=1 ;;
        --tests) tests=1 ;;
        --runtime) runtime=1 ;;
        *) echo "setup.sh: unknown option $arg (accepted: --vm, --tests, --runtime)" >&2; exit 2 ;;
    esac
done
if [ "$runtime" = 1 ] && [ "${SANDBOX_SKIP_APT:-0}" != 1 ]; then
    apt-get update -qq
    # busybox-static: the busybox image; iproute2, nftables: networks; redis-server: the
    # Redis of compose.yaml runs from this image too (redis-cli: its healthcheck);
    # debootstrap: `sandbox image bootstrap`; libseccomp2: every sandbox's seccomp filter
    apt-get install -y -qq --no-install-recommends busybox-static iproute2 nftables \
        redis-server debootstrap python3 python3-pip ca-certificates libseccomp2 >/dev/null
elif [ "${SANDBOX_SKIP_APT:-0}" != 1 ]; then
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends \
        busybox-static redis-server iproute2 iptables nftables bubblewrap runc debootstrap \
        umoci skopeo buildah podman catatonit golang-github-containernetworking-plugin-dnsname \
        docker-registry apache2-utils chromium fonts-dejavu-core tmux >/dev/null
    # umoci, skopeo, buildah, podman: peers that read and write our archives and OCI layouts;
    # podman also runs compose.yaml in tests/test_compose.py (catatonit: its `init: true`;
    # the dnsname plugin: its services' names, `redis`, on podman 4.3's CNI networks);
    # docker-registry (distribution 2.8) the registry the tests start, htpasswd (apache2-utils) its users;
    # debootstrap: `sandbox image bootstrap debian:SUITE`; chromium: the console's browser tests
    # (Playwright drives it: no browser is downloaded), DejaVu the terminal's font in it;
    # tmux: the real terminal the interactive tests type into
    # libseccomp2: seccomp filters; uidmap: /etc/subuid; the programs the security tests run
    # under the default profile (and gcc builds their probe): gcc, git, node, a JVM
    apt-get install -y -qq --no-install-recommends \
        libseccomp2 uidmap gcc libc6-dev git nodejs default-jdk-headless >/dev/null
    if ! command -v npm >/dev/null; then
        apt-get install -y -qq --no-install-recommends npm >/dev/null
    fi
    if [ "$vm" = 1 ]; then
        # shellcheck source=vm/config
        source scripts/vm/config
        apt-get install -y -qq --no-install-recommends qemu-system-x86 "$VM_KERNEL_PACKAGE" \
            >/dev/null || echo "setup.sh: cannot install qemu-system-x86 and $VM_KERNEL_PACKAGE" \
            "(pinned in scripts/vm/config): the VM lane will say it cannot boot" >&2
    fi
fi
# Joining a cgroup waits for an RCU grace period (5-15 ms) unless a cgroup2 root is
# mounted with favordynmods (Linux >= 6.0); the flag is global. See `sandbox doctor`.
cgroup2_root=$(findmnt -n -t cgroup2 -o TARGET 2>/dev/null | head -1 || true)
if [ -n "$cgroup2_root" ]; then
    mount -o remount,favordynmods "$cgroup2_root" 2>/dev/null || true
fi
# The kernel counts inotify instances and watches and epoll watches per user, and every
# sandbox in the host's user namespace is root there: with the default ceilings (128
# inotify instances) one sandbox could take them all from the others and the host. Each
# of them costs kernel memory charged to its sandbox's memory cgroup, so ceilings that
# memory reaches first (memory / the fewest bytes one costs: 512, 64, 64) leave each
# sandbox bounded by its own --memory and nofile. `sandbox doctor` checks the same
# figures (sandbox/doctor.py, PER_USER_COUNTS); only raised, never lowered.
if [ -w /proc/sys/fs/inotify/max_user_instances ]; then
    sysctl_conf=/etc/sysctl.d/60-sandbox.conf
    mem_bytes=$(( $(awk '/^MemTotal:/ { print $2 }' /proc/meminfo) * 1024 ))
    mkdir -p /etc/sysctl.d
    : > "$sysctl_conf.tmp"
    for entry in fs.inotify.max_user_instances:512 fs.inotify.max_user_watches:64 \
            fs.epoll.max_user_watches:64; do
        name=${entry%%:*} cost=${entry##*:}
        file=/proc/sys/${name//.//}
        want=$(( mem_bytes / cost > 2147483647 ? 2147483647 : mem_bytes / cost ))
        have=$(cat "$file" 2>/dev/null || echo 0)
        [ "$have" -gt "$want" ] && want=$have
        echo "$name = $want" >> "$sysctl_conf.tmp"
        echo "$want" 2>/dev/null > "$file" \
            || echo "setup.sh: note: cannot raise $name here; set it on the host" >&2
    done
    mv "$sysctl_conf.tmp" "$sysctl_conf"
else
    echo "setup.sh: note: /proc/sys is read-only here (a container?): the inotify and epoll" \
        "ceilings are the host's to raise (README.md, \"Resources stay contained\")" >&2
fi
# --userns=auto: each sandbox leases 65536 host ids from the sandbox entries (4096 ranges);
# ids far above any user's, never 0 (sandbox/security/subids.py)
for f in /etc/subuid /etc/subgid; do
    grep -q '^sandbox:' "$f" 2>/dev/null || echo 'sandbox:2147483648:268435456' >> "$f"
done
if ! python3 -m pip --version >/dev/null 2>&1; then
    apt-get install -y -qq --no-install-recommends python3-pip >/dev/null
fi
# Debian's own python3 refuses system-wide pip installs (PEP 668); this host is
# dedicated to sandbox, so install there anyway (a pyenv/venv python needs no flag).
pip_flags=()
if python3 -c 'import os, sys, sysconfig; sys.exit(not os.path.exists(os.path.join(sysconfig.get_path("stdlib"), "EXTERNALLY-MANAGED")))'; then
    pip_flags+=(--break-system-packages)
fi
if [ "$runtime" = 1 ]; then
    python3 -m pip install -q --disable-pip-version-check --no-cache-dir "${pip_flags[@]}" .
    exit 0
fi
extras=test
[ "$vm" = 1 ] && extras=test,vm
python3 -m pip install -q --disable-pip-version-check "${pip_flags[@]}" -e ".[$extras]"
# the web console's xterm.js and its add-ons, from the npm registry, as the lock file pins them;
# the daemon serves them from there (nothing is fetched while it runs)
npm ci --prefix server/console/vendor --no-audit --no-fund --ignore-scripts --loglevel=error >/dev/null
[ "$tests" = 1 ] || exit 0
# what tests need from the package index, fetched now: nothing is fetched while they run
bash scripts/test-cache.sh
# A Debian base for tests/test_build_debian.py, bootstrapped once per machine while the
# network is there (scripts/test-isolated runs the suite without one): its layer is kept in
# the cache and `sandbox image bootstrap` takes it from there afterwards.
bootstrap_cache=${SANDBOX_BOOTSTRAP_CACHE:-/var/cache/sandbox/bootstrap}
if [ "${SANDBOX_SKIP_APT:-0}" != 1 ] && [ ! -f "$bootstrap_cache/debian-bookworm.tar" ]; then
    state=$(mktemp -d)
    SANDBOX_STATE_DIR="$state" SANDBOX_RUN_DIR="$state/run" python3 -m sandbox image bootstrap \
        debian:bookworm --cache "$bootstrap_cache" >/dev/null 2>"$state.log" \
        || echo "setup: debian:bookworm could not be bootstrapped (see $state.log)" >&2
    rm -rf "$state"
fi
# The base image compose.yaml's Containerfile builds on (tests/test_compose.py builds and
# runs compose.yaml with podman, without the network): made now, from that Debian layer.
if command -v podman >/dev/null && ! podman image exists localhost/sandbox-base:bookworm; then
    SANDBOX_BOOTSTRAP_CACHE="$bootstrap_cache" bash deploy/build-base.sh podman \
        || echo "setup: the compose base image could not be built (deploy/build-base.sh)" >&2
fi
