"""The pytest plugin with images of one's own: the marker, the fixtures, sandbox_images.build."""

from __future__ import annotations

import pytest

from .build_support import (
    build,
    forget_new_tags,  # noqa: F401 - a fixture, used by pytestmark
    make_context,
)

pytest_plugins = ["pytester"]
pytestmark = [pytest.mark.root, pytest.mark.usefixtures("forget_new_tags")]


def test_marker_and_fixtures_use_a_built_image_by_name(pytester, tmp_path):
    ctx = make_context(tmp_path / "ctx", {"Sandboxfile": "FROM busybox\nCOPY baked /baked\n",
                                           "baked": "baked into the image\n"})
    assert build(ctx, "-t", "for-pytest:1").returncode == 0
    pytester.makepyfile(f"""
        import os
        import pytest

        @pytest.mark.sandbox(image="for-pytest:1")
        def test_marked():
            assert open("/baked").read() == "baked into the image\\n"
            assert not os.path.exists("/usr/bin/python3")  # busybox's root, not the host's

        def test_factory(sandbox_factory):
            sb = sandbox_factory(image="for-pytest:1")
            assert sb.run("cat /baked").stdout == b"baked into the image\\n"

        def test_session_build(sandbox_images, sandbox_factory):
            name = sandbox_images.build({str(ctx)!r}, "built-in-session:1")
            assert sandbox_factory(image=name).run("cat /baked").exit_code == 0
    """)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-rA")
    result.assert_outcomes(passed=3)
