#!/usr/bin/env bash
# Make localhost/sandbox-base:bookworm, the base Containerfile builds on, from what this
# machine has and the Debian archive: no image is pulled from any registry.
#   deploy/build-base.sh [podman|docker]      (default: podman, else docker)
# 1. Debian bookworm's layer: the one `sandbox image bootstrap debian:bookworm` keeps in
#    its cache (scripts/setup.sh --tests makes it), else bootstrapped now (debootstrap).
# 2. Imported as localhost/debian:bookworm.
# 3. deploy/Containerfile.base over it: setup.sh --runtime (Debian packages, the Python
#    dependencies from PyPI; this step needs the network), trusting what this machine
#    trusts (its added certificate authorities, /usr/local/share/ca-certificates).
set -euo pipefail
cd "$(dirname "$0")/.."
engine=${1:-$(command -v podman >/dev/null && echo podman || echo docker)}
case "$engine" in
    podman|docker) ;;
    *) echo "build-base.sh: unknown engine $engine (accepted: podman, docker)" >&2; exit 2 ;;
esac
cache=${SANDBOX_BOOTSTRAP_CACHE:-/var/cache/sandbox/bootstrap}
layer=$cache/debian-bookworm.tar
if [ ! -f "$layer" ]; then
    state=$(mktemp -d)
    SANDBOX_STATE_DIR="$state" SANDBOX_RUN_DIR="$state/run" python3 -m sandbox image bootstrap \
        debian:bookworm --cache "$cache"
fi
"$engine" import --change 'CMD ["bash"]' \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    "$layer" localhost/debian:bookworm >/dev/null
context=$(mktemp -d)
trap 'rm -rf "$context" "${state:-}"' EXIT
mkdir "$context/src" "$context/ca"
tar -c --exclude-vcs --exclude=__pycache__ --exclude='*.egg-info' --exclude=.mypy_cache \
    --exclude=.ruff_cache --exclude=.pytest_cache . | tar -x -C "$context/src"
for crt in /usr/local/share/ca-certificates/*.crt; do
    [ -f "$crt" ] && cp "$crt" "$context/ca/"
done
"$engine" build -q -f deploy/Containerfile.base -t localhost/sandbox-base:bookworm "$context"
