#!/bin/sh
# Install requirements.txt into deps/ from a wheelhouse that the job caches
# (/root/.cache/wheels, under a key made from requirements.txt): on a cache hit
# it installs without the network; on a miss it downloads the wheels first.
set -e
wheels=/root/.cache/wheels
install() {
    python3 -m pip install -q --disable-pip-version-check --no-index --find-links "$wheels" \
        --target deps -r requirements.txt "$@"
}
if install 2>/dev/null; then
    echo "installed from the cached wheels"
else
    python3 -m pip download -q --disable-pip-version-check -d "$wheels" -r requirements.txt
    install
    echo "downloaded the wheels, then installed"
fi
