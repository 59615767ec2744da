"""The plugin's options and marker, and which tests run in a sandbox.

Shared by the outer session (``plugin``) and the pytest that runs one test
inside a sandbox (``inner``), so both read the same options, ini values and
marker.
"""

from __future__ import annotations

from .settings import LIMIT_OPTIONS

MARKER_HELP = (
    "sandbox(memory=None, timeout=None, pids=None, cpus=None, network='none', image='host', "
    "env={}, mounts=[], seccomp='default', userns='host', allow_host_ports=[]): "
    "run this test inside an isolated sandbox (own pid, mount and network "
    "namespaces, host filesystem read-only, limits enforced by the kernel); for tests using "
    "the sandbox fixture, the options of that fixture")
FIXTURES = ("sandbox", "sandbox_factory")


def add_options(parser) -> None:
    """The ``--sandbox*`` command-line options and ``sandbox_*`` ini options."""
    group = parser.getgroup("sandbox", "isolated tests (pytest_sandbox)")
    group.addoption("--sandbox", action="store_true", dest="sandbox_all",
                    help="run every test in a sandbox, as if marked @pytest.mark.sandbox")
    group.addoption("--sandbox-image", dest="sandbox_image", metavar="NAME",
                    help="image for sandboxes (default: host, a read-only view of this host)")
    parser.addini("sandbox_image", "image for sandboxes (default: host)")
    for name, (text, _default) in LIMIT_OPTIONS.items():
        group.addoption(f"--sandbox-{name}", dest=f"sandbox_{name}", metavar="VALUE", help=text)
        parser.addini(f"sandbox_{name}", text)
    group.addoption("--sandbox-strict", action="store_true", dest="sandbox_strict",
                    help="fail marked tests when this host cannot make sandboxes (default: skip)")
    group.addoption("--sandbox-no-fork", action="store_true", dest="sandbox_no_fork",
                    help="run each sandboxed test as a pytest subprocess in its sandbox, "
                         "never by forking this process (slower)")
    group.addoption("--sandbox-redis", dest="sandbox_redis", metavar="URL",
                    help="dispatch sandboxed tests through the job queue at URL to remote workers")
    group.addoption("--sandbox-queue", dest="sandbox_queue", metavar="NAME",
                    help="the queue --sandbox-redis submits to (default: default)")
    parser.addini("sandbox_queue", "the queue --sandbox-redis submits to (default: default)")


def wants_sandbox(item) -> bool:
    """True when ``item`` itself should run inside a sandbox."""
    if any(name in getattr(item, "fixturenames", ()) for name in FIXTURES):
        return False
    return item.get_closest_marker("sandbox") is not None or item.config.getoption("sandbox_all")
