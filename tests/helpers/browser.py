"""Headless Chromium for the play page's end-to-end test and screenshot: Debian's `chromium` package
(scripts/install-chromium.sh) driven by Playwright from PyPI, never Playwright's own browser downloads.

    reason = browser_missing()            # None, or why no browser can run here (the test skips with it)
    with chromium_page() as page:         # a Playwright Page in a fresh profile
        page.goto(url)
"""

from __future__ import annotations

import importlib.util
import os
import tempfile
from contextlib import contextmanager

CHROMIUM = os.environ.get("PLAY_CHROMIUM", "/usr/bin/chromium")
# Without the background-networking flags chromium keeps calling home, which a closed network turns into a flood
# of failing requests.
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]


def browser_missing() -> str | None:
    if not os.access(CHROMIUM, os.X_OK):
        return f"{CHROMIUM} is not installed (Debian package chromium: scripts/install-chromium.sh)"
    if importlib.util.find_spec("playwright") is None:
        return "playwright is not installed (pip install -e '.[test]')"
    return None


@contextmanager
def chromium_page(width: int = 1000, height: int = 700):
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="play-chromium-") as profile, sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            profile, executable_path=CHROMIUM, headless=True, args=FLAGS,
            viewport={"width": width, "height": height})
        try:
            yield context.pages[0] if context.pages else context.new_page()
        finally:
            context.close()
