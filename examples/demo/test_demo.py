"""A small suite for the example job: a few passing tests and one skipped."""

import sys

import pytest


def test_addition():
    assert 1 + 1 == 2


def test_strings():
    assert "sandbox".upper() == "SANDBOX"


@pytest.mark.parametrize("n", [1, 2, 3])
def test_squares_are_positive(n):
    assert n * n > 0


def test_runs_in_the_workspace():
    import os

    assert os.getcwd() == "/workspace"


@pytest.mark.skipif(sys.platform == "linux", reason="shows a skipped test in the totals")
def test_only_off_linux():
    assert False
