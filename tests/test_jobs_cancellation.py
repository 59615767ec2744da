"""jobs.Cancel: a cancel request reaches what is being watched at once."""

from __future__ import annotations

import threading

from jobs import Cancel


def test_set_calls_the_watched_hook_and_only_while_watched():
    cancel, calls = Cancel(), []
    with cancel.watch(lambda: calls.append("kill")):
        assert calls == [] and not cancel.is_set()
        cancel.set()
        assert calls == ["kill"] and cancel.is_set()
    cancel.set()  # the block has ended: nothing is called any more
    assert calls == ["kill"]


def test_watching_after_the_request_calls_the_hook_at_once():
    cancel, calls = Cancel(), []
    cancel.set()
    with cancel.watch(lambda: calls.append("kill")):
        assert calls == ["kill"]


def test_a_request_from_another_thread_reaches_the_hook():
    cancel, killed = Cancel(), threading.Event()
    with cancel.watch(killed.set):
        threading.Thread(target=cancel.set).start()
        assert killed.wait(10)
