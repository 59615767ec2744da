#!/usr/bin/env bash
# Install what sandbox needs on a Debian machine (as root) and the package itself.
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive
if [ "${SANDBOX_SKIP_APT:-0}" != 1 ]; then
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends \
        busybox-static redis-server iproute2 iptables nftables bubblewrap runc >/dev/null
fi
python3 -m pip install -q --disable-pip-version-check -e '.[test]'
