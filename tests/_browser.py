"""Headless Chromium for the tests that open built pages (the book, the slide decks).

Uses the system browser (Debian's ``chromium``) through Playwright; Playwright's own browser
download cannot work on our machines. Without either, a test is skipped locally and fails in CI,
where a browser check must run.
"""
from __future__ import annotations

import os
import shutil
from typing import Iterator

import pytest


def chromium_path() -> str | None:
    """The first Chromium-family executable on PATH, or None."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def launch(what: str) -> Iterator:
    """Yield a launched headless browser (for a pytest fixture); ``what`` names the pages in messages."""
    exe = chromium_path()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        exe = None
    if exe is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI must open {what} in a real browser: no chromium / playwright found")
        pytest.skip("no chromium or playwright (apt-get install chromium; pip install playwright)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=exe, args=["--no-sandbox", "--disable-gpu"])
        yield b
        b.close()
