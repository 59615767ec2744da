"""The pluggy hooks, implemented in a conftest.py as users would."""

import pytest

pytest_plugins = ["pytester"]
pytestmark = pytest.mark.root

CONFTEST = """
    import os

    def pytest_sandbox_spec(item, fields):
        fields["env"]["FROM_HOOK"] = item.name
        fields["hostname"] = "hooked"
        if item.get_closest_marker("small"):
            fields["limits"]["memory"] = "48m"

    def log(line):
        with open(os.path.join(os.environ["HOOK_LOG"], "events"), "a") as f:
            f.write(line + "\\n")

    def pytest_sandbox_ready(item, sandbox):
        log(f"ready {item.name} {sandbox.spec.hostname}")

    def pytest_sandbox_result(item, result):
        log(f"result {item.name} {result.exit_code} {result.cause} {result.limits['memory']}")
"""


def test_hooks_from_a_conftest_shape_the_spec_and_see_the_results(pytester, monkeypatch):
    pytester.makeconftest(CONFTEST)
    pytester.makeini("[pytest]\nmarkers = small: a small sandbox\n")
    log = pytester.mkdir("log")
    monkeypatch.setenv("HOOK_LOG", str(log))
    pytester.makepyfile("""
        import os, socket, pytest

        @pytest.mark.sandbox
        def test_marked():
            assert os.environ["FROM_HOOK"] == "test_marked"
            assert socket.gethostname() == "hooked"

        @pytest.mark.sandbox
        @pytest.mark.small
        def test_small():
            pass

        def test_fixture(sandbox):
            assert sandbox.run("echo $FROM_HOOK; hostname").stdout == b"test_fixture\\nhooked\\n"
    """)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--strict-markers")
    result.assert_outcomes(passed=3)
    gib, small = 1 << 30, 48 << 20
    assert sorted((log / "events").read_text().splitlines()) == [
        "ready test_fixture hooked", "ready test_marked hooked", "ready test_small hooked",
        f"result test_fixture 0 exited {gib}", f"result test_marked 0 exited {gib}",
        f"result test_small 0 exited {small}",
    ]
