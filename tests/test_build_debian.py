"""A Debian base made with debootstrap, and apt-get in a build step over the bridge.

The image is bootstrapped once per machine: its layer is kept in
SANDBOX_BOOTSTRAP_CACHE (default /var/cache/sandbox/bootstrap) and taken from
there by each run. scripts/setup.sh fills it while the network is there (the
suite may run in a private network namespace, as scripts/test-isolated runs it); a
run on the host's network bootstraps it here if it is missing. The packages the build
installs come from a small apt repository this test serves beyond the host's
forwarding (``jobs_support.Outside``, a stand-in for the internet), so the test
needs no internet (the suite may run in a private network namespace): the step
reaches it with --network bridge --egress, as it would reach the Debian archive.
(Not on the bridge's gateway: a sandbox reaches no service of the host.)
"""

from __future__ import annotations

import hashlib
import os
import subprocess

import pytest

from .build_support import (
    build,
    forget_new_tags,  # noqa: F401 - a fixture, used by pytestmark
    make_context,
)
from .helpers import sandbox_cli
from .jobs_support import Outside

pytestmark = [pytest.mark.root, pytest.mark.usefixtures("forget_new_tags")]

CACHE = os.environ.get("SANDBOX_BOOTSTRAP_CACHE", "/var/cache/sandbox/bootstrap")


@pytest.fixture(scope="module")
def debian():
    made = sandbox_cli("image", "bootstrap", "debian:bookworm", "--cache", CACHE, timeout=1200)
    if made.returncode != 0:
        pytest.skip(f"no debian:bookworm: nothing cached in {CACHE} and the bootstrap failed "
                    f"({made.stderr.decode().strip().splitlines()[-1:]}); run `sandbox image "
                    f"bootstrap debian:bookworm --cache {CACHE}` where the Debian archive is "
                    "reachable")
    yield "debian:bookworm"
    sandbox_cli("rmi", "-f", "debian:bookworm")


def test_the_bootstrapped_image_is_debian(debian):
    out = sandbox_cli("run", debian, "--", "sh", "-c", ". /etc/os-release; echo $ID $VERSION_CODENAME")
    assert out.stdout == b"debian bookworm\n", out.stderr
    history = sandbox_cli("image", "history", "--no-trunc", debian).stdout
    assert b"sandbox image bootstrap debian:bookworm" in history


def _package(root):
    """A .deb holding /usr/bin/sandbox-hello, and a flat repository around it."""
    pkg = root / "pkg"
    (pkg / "DEBIAN").mkdir(parents=True)
    (pkg / "DEBIAN/control").write_text(
        "Package: sandbox-hello\nVersion: 1.0\nArchitecture: all\nMaintainer: tests <t@example.org>\n"
        "Description: says hello\n")
    (pkg / "usr/bin").mkdir(parents=True)
    (pkg / "usr/bin/sandbox-hello").write_text("#!/bin/sh\necho hello from a package\n")
    os.chmod(pkg / "usr/bin/sandbox-hello", 0o755)
    repo = root / "repo"
    repo.mkdir()
    deb = repo / "sandbox-hello_1.0_all.deb"
    subprocess.run(["dpkg-deb", "--root-owner-group", "--build", str(pkg), str(deb)], check=True,
                   capture_output=True)
    data = deb.read_bytes()
    packages = ((pkg / "DEBIAN/control").read_text() + f"Filename: ./{deb.name}\nSize: {len(data)}\n"
                f"SHA256: {hashlib.sha256(data).hexdigest()}\n")
    (repo / "Packages").write_text(packages)
    digest = hashlib.sha256(packages.encode()).hexdigest()
    (repo / "Release").write_text(f"Suite: ./\nSHA256:\n {digest} {len(packages)} Packages\n")
    return repo


@pytest.fixture
def apt_repo(tmp_path):
    outside = Outside(str(_package(tmp_path))).start()
    try:
        yield f"{outside.url}/"
    finally:
        outside.stop()


def test_apt_get_install_in_a_build_step(debian, apt_repo, tmp_path):
    ctx = make_context(tmp_path / "ctx", {"Sandboxfile": """\
FROM debian:bookworm
ARG REPO
RUN mv /etc/apt/sources.list /etc/apt/sources.list.off && \\
    echo "deb [trusted=yes] $REPO ./" > /etc/apt/sources.list.d/local.list && \\
    apt-get update && apt-get install -y sandbox-hello && rm -rf /var/lib/apt/lists/*
CMD ["sandbox-hello"]
"""})
    out = build(ctx, "-t", "with-apt", "--build-arg", f"REPO={apt_repo}", "--network", "bridge",
                "--egress", timeout=600)
    assert out.returncode == 0, out.stdout.decode()[-2000:] + out.stderr.decode()
    assert b"Setting up sandbox-hello (1.0)" in out.stdout
    run = sandbox_cli("run", "with-apt")
    assert run.stdout == b"hello from a package\n", run.stderr
    dpkg = sandbox_cli("run", "with-apt", "--", "dpkg-query", "-W", "sandbox-hello")
    assert dpkg.stdout == b"sandbox-hello\t1.0\n"
