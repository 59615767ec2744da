"""The ``sandbox``, ``sandbox_factory`` and ``sandbox_images`` fixtures."""

import pytest

from .helpers import UNRELATED_PLUGINS_OFF

pytest_plugins = ["pytester"]
pytestmark = pytest.mark.root


def test_a_sandbox_runs_commands_and_keeps_its_files(pytester):
    pytester.makepyfile("""
        def test_cli_in_isolation(sandbox):
            r = sandbox.run("echo out; echo err >&2; exit 3")
            assert (r.exit_code, r.stdout, r.stderr) == (3, b"out\\n", b"err\\n")
            sandbox.write_file("/tmp/in.txt", "data")
            assert sandbox.read_file("/tmp/in.txt") == b"data"
            assert sandbox.run(["cat", "/tmp/in.txt"]).stdout == b"data"
            assert sandbox.run("cat", input=b"piped").stdout == b"piped"
            assert sandbox.run("cat /proc/1/comm").stdout.strip() == b"sandbox-init"
            assert sandbox.run("pwd", cwd="/tmp").stdout == b"/tmp\\n"
            assert sandbox.run("echo $GREETING", env={"GREETING": "hi"}).stdout == b"hi\\n"
    """)
    pytester.runpytest_subprocess("-p", "no:cacheprovider", *UNRELATED_PLUGINS_OFF).assert_outcomes(passed=1)


def test_the_marker_sets_the_fixtures_options(pytester):
    pytester.makepyfile("""
        import pytest

        @pytest.mark.sandbox(image="busybox", memory="64m", env={"WHO": "marker"})
        def test_busybox(sandbox):
            assert sandbox.spec.image == "busybox"
            assert sandbox.spec.limits.memory == 64 << 20
            assert sandbox.run("echo $WHO").stdout == b"marker\\n"
            assert b"BusyBox" in sandbox.run("busybox --help").stdout
    """)
    pytester.runpytest_subprocess("-p", "no:cacheprovider", *UNRELATED_PLUGINS_OFF).assert_outcomes(passed=1)


def test_a_factory_makes_several_and_a_timeout_kills_one(pytester):
    pytester.makepyfile("""
        def test_two(sandbox_factory):
            a = sandbox_factory(hostname="alpha")
            b = sandbox_factory(image="busybox", hostname="beta", network="none")
            assert a.run("hostname").stdout == b"alpha\\n"
            assert b.run("hostname").stdout == b"beta\\n"
            a.write_file("/tmp/only-in-a", "x")
            assert b.run("test -e /tmp/only-in-a").exit_code == 1
            r = b.run("sleep 30", timeout=0.5)
            assert r.timed_out and r.exit_code == 137
            assert a.run("true").exit_code == 0
    """)
    pytester.runpytest_subprocess("-p", "no:cacheprovider", *UNRELATED_PLUGINS_OFF).assert_outcomes(passed=1)


def test_session_images(pytester):
    pytester.makepyfile("""
        def test_one(sandbox_images, sandbox_factory):
            name = sandbox_images.get("busybox")
            assert sandbox_factory(image=name).run("true").exit_code == 0
    """)
    pytester.runpytest_subprocess("-p", "no:cacheprovider", *UNRELATED_PLUGINS_OFF).assert_outcomes(passed=1)


def test_spawn_drives_an_interactive_program_on_a_terminal(pytester):
    pytester.makepyfile("""
        import pytest
        from sandbox import ExpectTimeout

        def test_interactive(sandbox):
            sandbox.write_file("/tmp/ask.sh", "printf 'name? '; read n; echo hello $n; exit 3")
            with sandbox.spawn("sh /tmp/ask.sh") as prog:
                prog.expect("name\\\\? ")
                prog.sendline("world")
                prog.expect(r"hello (\\w+)")
                assert prog.match.group(1) == b"world"
                assert prog.wait(10).exit_code == 3
            with sandbox.spawn(["sh"], size=(33, 77)) as sh:
                sh.expect_exact("# ")
                sh.sendline("tty; stty size")
                sh.expect("33 77")
                assert b"/dev/pts/" in sh.before
                sh.sendline("sleep 100")
                sh.sendcontrol("c")
                sh.expect_exact("# ")
                with pytest.raises(ExpectTimeout, match="did not come"):
                    sh.expect("never", timeout=0.3)
            assert sandbox.run("echo still-there").stdout == b"still-there\\n"
            left = sandbox.spawn("sleep 1000")  # ended with the sandbox at the latest
    """)
    pytester.runpytest_subprocess("-p", "no:cacheprovider", *UNRELATED_PLUGINS_OFF).assert_outcomes(passed=1)


def test_spawn_works_in_a_sandbox_with_a_user_namespace_of_its_own(pytester):
    pytester.makepyfile("""
        import pytest

        @pytest.mark.sandbox(image="busybox", userns="auto")
        def test_interactive(sandbox):
            with sandbox.spawn(["sh"]) as sh:
                sh.expect_exact("# ")
                sh.sendline("id -u; cat /proc/self/uid_map; echo ok-$((6 * 7))")
                sh.expect("ok-42")
                uid, inside, host, size = sh.before.split()[-4:]
                assert (uid, inside, size) == (b"0", b"0", b"65536") and int(host) >= 1 << 31
                sh.sendline("exit 2")
                assert sh.wait(10).exit_code == 2
    """)
    pytester.runpytest_subprocess("-p", "no:cacheprovider", *UNRELATED_PLUGINS_OFF).assert_outcomes(passed=1)
