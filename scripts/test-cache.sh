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
# click's own suite: run plain, sandboxed, and sandboxed under pytest-xdist's -n 2
# (tests/test_plugin_suite.py); pluggy's, through the job queue (bench/remote_suite.py)
for sdist in click==8.1.8 pluggy==1.6.0; do
    if ! ls "$cache"/sdist/"${sdist%%==*}"-"${sdist##*==}".tar.gz >/dev/null 2>&1; then
        "${pip[@]}" download --no-deps --no-binary :all: -d "$cache/sdist" "$sdist"
    fi
done
# pytest-rerunfailures, for the tests that load it (PYTHONPATH) and only them: installed beside
# pytest-xdist it starts a server thread in every pytest session, and this suite forks Python
# targets from its own process, which must stay single-threaded (the plugin's marked tests
# would go to a twin: see README, "The pytest plugin").
if [ ! -f "$cache/site/pytest_rerunfailures.py" ]; then
    "${pip[@]}" install --no-deps --target "$cache/site" "pytest-rerunfailures>=14"
fi
