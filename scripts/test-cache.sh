#!/usr/bin/env bash
# What some tests need from the package index, fetched now (at setup) because nothing may be
# fetched while tests run. Into $SANDBOX_TEST_CACHE (default /opt/sandbox-tests: under /opt,
# which the `host` image shows, so sandboxes on a worker see it too). Tests that need an item
# skip without it, saying so (CI, with SANDBOX_MUST_WORK=1, fails them).
set -euo pipefail
cache=${SANDBOX_TEST_CACHE:-/opt/sandbox-tests}
mkdir -p "$cache/sdist" "$cache/site"
pip=(python3 -m pip --disable-pip-version-check -q)
# more-itertools' own suite: subtests and warnings, run plain and sandboxed (tests/test_plugin_suite.py)
if ! ls "$cache"/sdist/more[-_]itertools-10.5.0.tar.gz >/dev/null 2>&1; then
    "${pip[@]}" download --no-deps --no-binary :all: -d "$cache/sdist" more-itertools==10.5.0
fi
# pytest-rerunfailures, for the tests that load it (PYTHONPATH) and only them: installed beside
# pytest-xdist it starts a server thread in every pytest session, and a multi-threaded pytest
# is never forked, so every sandboxed test would take the slow path.
if [ ! -f "$cache/site/pytest_rerunfailures.py" ]; then
    "${pip[@]}" install --no-deps --target "$cache/site" "pytest-rerunfailures>=14"
fi
