"""The fixtures: ``sandbox``, ``sandbox_factory`` and the session's ``sandbox_images``.

``sandbox`` is a fresh SandboxSession per test, made with the options of the
nearest ``sandbox`` marker; ``sandbox_factory`` makes any number of them
(with different images, limits or a network between them); all of a test's
sandboxes are torn down after it. On a host that cannot make sandboxes the
fixtures skip the test with the reason (``--sandbox-strict``: fail it).
"""

from __future__ import annotations

import shutil

import pytest

from sandbox import NetworkSpec, SandboxError

from . import probe
from .session import AGENT, SandboxSession, exchange_mount, new_exchange
from .settings import base_fields, build_spec


def _require_sandboxes(config) -> None:
    reason = probe.why_not()
    if reason:
        if config.getoption("sandbox_strict", False):
            pytest.fail(f"--sandbox-strict: {reason}", pytrace=False)
        pytest.skip(reason)


class SandboxFactory:
    """Makes sandboxes for one test and tears them all down after it."""

    def __init__(self, request) -> None:
        self.request = request
        self.sessions: list[tuple[SandboxSession, str]] = []

    def __call__(self, *, image: str | None = None, network: str | None = None,
                 alias: str | None = None, name: str | None = None, **options) -> SandboxSession:
        """A running sandbox; ``options`` as the marker's (memory, timeout, env, mounts, ...)."""
        item = self.request.node
        if image is not None:
            options["image"] = image
        fields = base_fields(item.config, item, ["/bin/sh", "-c", AGENT], **options)
        if network is not None or alias is not None:
            ports = fields["network"].allow_host_ports if isinstance(fields["network"], NetworkSpec) else ()
            fields["network"] = NetworkSpec(network or "none", alias=alias, allow_host_ports=ports)
        if name is not None:
            fields["name"] = name
        exchange = new_exchange()
        try:
            fields["mounts"] = [exchange_mount(exchange), *fields["mounts"]]
            spec = build_spec(item.config, item, fields)
            session = SandboxSession(spec, exchange, on_result=lambda result: (
                item.config.hook.pytest_sandbox_result(item=item, result=result)))
        except BaseException:
            shutil.rmtree(exchange, ignore_errors=True)
            raise
        self.sessions.append((session, exchange))
        item.config.hook.pytest_sandbox_ready(item=item, sandbox=session.sandbox)
        return session

    def close(self) -> None:
        errors = []
        while self.sessions:
            session, exchange = self.sessions.pop()
            try:
                session.close()
            except SandboxError as exc:
                errors.append(exc)
            finally:
                shutil.rmtree(exchange, ignore_errors=True)
        if errors:
            raise errors[0]


@pytest.fixture
def sandbox_factory(request):
    """Make sandboxes: ``sandbox_factory(image=, network=, memory=, ...)``; all end after the test."""
    _require_sandboxes(request.config)
    factory = SandboxFactory(request)
    yield factory
    factory.close()


@pytest.fixture
def sandbox(sandbox_factory):
    """A fresh sandbox for this test, with the options of the nearest ``sandbox`` marker."""
    return sandbox_factory()


class SessionImages:
    """Images made once per session and shared by every test that asks."""

    def __init__(self) -> None:
        self._ready: set[str] = set()

    def get(self, name: str) -> str:
        """Make sure image ``name`` exists (the built-ins are made on first use); its name."""
        if name not in self._ready:
            from sandbox import get_image

            get_image(name)
            self._ready.add(name)
        return name

    def build(self, context: str, name: str, **options) -> str:
        """Build ``context``'s Sandboxfile once per session as ``name`` (NAME[:TAG]); its name.

        ``options`` are ``sandbox.build_image``'s (file, build_args, network, ...); the
        build is cached as `sandbox build` is, so an unchanged image costs little.
        """
        if name not in self._ready:
            import io

            from sandbox import build_image

            build_image(context, tags=(name,), out=io.StringIO(), **options)
            self._ready.add(name)
        return name

    def load(self, path: str, name: str) -> str:
        """Import an OCI / docker-archive / rootfs tarball once per session as ``name``."""
        if name not in self._ready:
            from sandbox import import_image

            import_image(path, name, replace=True)
            self._ready.add(name)
        return name


@pytest.fixture(scope="session")
def sandbox_images(request):
    """Session-wide images: ``sandbox_images.get("busybox")``, ``.load(tarball, name)``,
    ``.build(context, name)``."""
    _require_sandboxes(request.config)
    return SessionImages()
