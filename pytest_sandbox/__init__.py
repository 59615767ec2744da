"""The pytest plugin: run tests isolated, with one decorator or one fixture.

- ``@pytest.mark.sandbox(memory=, timeout=, network=, image=, ...)``: the test
  itself runs inside a sandbox (see ``plugin`` and ``where``).
- fixtures ``sandbox``, ``sandbox_factory``, ``sandbox_images`` (``fixtures``).
- hooks ``pytest_sandbox_spec``, ``pytest_sandbox_ready``,
  ``pytest_sandbox_result`` (``hookspecs``).

Registered as the pytest11 entry point ``sandbox``; ``-p no:sandbox`` turns it off.
"""

from .session import SandboxSession

__all__ = ["SandboxSession"]
