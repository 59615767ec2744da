"""Helpers for the console's tests in a real browser: Debian's chromium, driven by Playwright.

Chromium is never downloaded: it is /usr/bin/chromium (scripts/setup.sh),
launched through ``executable_path``. Screenshots go to
tests.console_support.screenshots_dir; docs/console/ holds copies for the README.
"""

from __future__ import annotations

import io
import os
import shutil
import tarfile
import time

import pytest

from .console_support import screenshots_dir

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"]


@pytest.fixture(scope="module")
def browser():
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is not installed (scripts/setup.sh installs Debian's chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright is not installed (pip install -e .[test])")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory):
    return screenshots_dir(tmp_path_factory)


def watched(page):
    """The page, its console messages and errors printed (pytest shows them when a test fails)."""
    page.on("console", lambda message: print(f"console {message.type}: {message.text}"))
    page.on("pageerror", lambda error: print(f"page error: {error}"))
    return page


def signed_in(browser, console, token: str, path: str):
    """A fresh browser context signed in with ``token``, at ``path``."""
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    page = watched(context.new_page())
    page.goto(f"{console.url}/console/login#{token}")
    page.wait_for_url(f"{console.url}/console/")
    page.goto(f"{console.url}{path}")
    return page


def student_page(browser, console, url: str):
    context = browser.new_context(viewport={"width": 1000, "height": 600})
    page = watched(context.new_page())
    page.goto(url)
    return page


def screen(page) -> str:
    return page.locator("#terminal .xterm-rows").inner_text()


def wait_screen(page, needle: str, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = screen(page) if page.locator("#terminal .xterm-rows").count() else ""
        if needle in text:
            return text
        time.sleep(0.1)
    raise AssertionError(f"{needle!r} is not on the terminal: {text!r}")


def workspace(tmp_path) -> str:
    path = tmp_path / "ws.tar.gz"
    data = b"hello from the workspace\n"
    with tarfile.open(path, "w:gz") as tar:
        info = tarfile.TarInfo("greeting.txt")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return str(path)


def shots_reach_the_docs(shots: str, names: tuple[str, ...]) -> None:
    """The screenshots of this run, where the README shows them from (docs/console/);
    SANDBOX_UPDATE_DOCS=1 copies them there."""
    docs = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs", "console")
    for name in names:
        assert os.path.getsize(os.path.join(shots, name)) > 5000
        if os.environ.get("SANDBOX_UPDATE_DOCS") == "1":
            shutil.copy(os.path.join(shots, name), os.path.join(docs, name))
        assert os.path.exists(os.path.join(docs, name)), f"docs/console/{name} is missing"
