#!/usr/bin/env bash
# Install what sandbox needs on a Debian machine (as root) and the package itself.
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive
if [ "${SANDBOX_SKIP_APT:-0}" != 1 ]; then
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends \
        busybox-static redis-server iproute2 iptables nftables bubblewrap runc \
        umoci skopeo tmux >/dev/null  # umoci, skopeo: peers that check the image store's OCI
        # layout; tmux: the real terminal the interactive tests type into
fi
# Joining a cgroup waits for an RCU grace period (5-15 ms) unless a cgroup2 root is
# mounted with favordynmods (Linux >= 6.0); the flag is global. See `sandbox doctor`.
cgroup2_root=$(findmnt -n -t cgroup2 -o TARGET 2>/dev/null | head -1 || true)
if [ -n "$cgroup2_root" ]; then
    mount -o remount,favordynmods "$cgroup2_root" 2>/dev/null || true
fi
if ! python3 -m pip --version >/dev/null 2>&1; then
    apt-get install -y -qq --no-install-recommends python3-pip >/dev/null
fi
# Debian's own python3 refuses system-wide pip installs (PEP 668); this host is
# dedicated to sandbox, so install there anyway (a pyenv/venv python needs no flag).
pip_flags=()
if python3 -c 'import os, sys, sysconfig; sys.exit(not os.path.exists(os.path.join(sysconfig.get_path("stdlib"), "EXTERNALLY-MANAGED")))'; then
    pip_flags+=(--break-system-packages)
fi
python3 -m pip install -q --disable-pip-version-check "${pip_flags[@]}" -e '.[test]'
# what tests need from the package index, fetched now: nothing is fetched while they run
bash scripts/test-cache.sh
