"""Open a report in headless Chromium and check it rendered, as a person would see it.

Uses Debian's ``chromium`` and ``chromedriver`` through selenium, never selenium-manager (which would
try to download a browser): ``SE_OFFLINE=1`` and explicit binary paths. For tests and for checking a
report by hand:

    python tests/support/browser.py STUDY_DIR/report.html --screenshot shot.png
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cnnbench.errors import CnnbenchError

CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking")
_CANDIDATES = {
    "chromium": ("/usr/bin/chromium", "/usr/bin/chromium-browser"),
    "chromedriver": ("/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"),
}


class BrowserUnavailable(CnnbenchError):
    """Chromium or chromedriver is not installed (Debian packages ``chromium`` and ``chromium-driver``)."""


@dataclass
class PageCheck:
    """What the browser saw."""

    title: str
    images: int  # <img> elements
    broken_images: list[str]  # alt text of images that did not load (naturalWidth 0)
    console_errors: list[str]  # SEVERE browser log entries
    table_rows: dict[str, int]  # table id → rows in its body
    screenshot: Path | None
    page_height: int  # CSS pixels
    requests: list[str] = field(default_factory=list)  # network requests (http, https, ws, ftp): none expected

    @property
    def ok(self) -> bool:
        return self.images > 0 and not self.broken_images and not self.console_errors and not self.requests


def find_browser() -> tuple[str, str] | None:
    """(chromium, chromedriver) paths, or None when either is missing."""
    found = []
    for name, paths in _CANDIDATES.items():
        path = next((p for p in paths if os.access(p, os.X_OK)), None) or shutil.which(name)
        if path is None:
            return None
        found.append(path)
    return found[0], found[1]


@contextlib.contextmanager
def open_page(html_path: str | os.PathLike[str], width: int = 1400, height: int = 1000) -> Iterator[Any]:
    """A selenium Chrome driver showing ``html_path`` (a file URL), closed on exit.

    Raises:
        BrowserUnavailable: chromium or chromedriver is not installed.
    """
    binaries = find_browser()
    if binaries is None:
        raise BrowserUnavailable(
            "chromium and chromedriver are needed to check a report in a browser: "
            "apt-get install chromium chromium-driver"
        )
    os.environ["SE_OFFLINE"] = "1"  # selenium-manager must never download a driver or browser
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = binaries[0]
    with tempfile.TemporaryDirectory(prefix="cnnbench-chromium-") as profile:
        for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}"):
            options.add_argument(flag)
        options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
        driver = webdriver.Chrome(service=Service(binaries[1]), options=options)
        try:
            driver.set_page_load_timeout(60)
            driver.get(Path(html_path).resolve().as_uri())
            yield driver
        finally:
            driver.quit()


_IMAGES_JS = """
return Array.from(document.images).map(function (img) {
  return [img.alt || img.src.slice(0, 40), img.complete, img.naturalWidth, img.naturalHeight];
});
"""
_TABLES_JS = """
var out = {};
document.querySelectorAll('table[id]').forEach(function (t) {
  out[t.id] = t.tBodies.length ? t.tBodies[0].rows.length : 0;
});
return out;
"""


def inspect(driver: Any, screenshot: str | os.PathLike[str] | None = None, full_page: bool = True) -> PageCheck:
    """Check the page shown by ``driver``: images loaded, console clean, rows per table; save a screenshot."""
    images = driver.execute_script(_IMAGES_JS)
    broken = [str(alt) for alt, complete, w, h in images if not complete or not w or not h]
    logs = driver.get_log("browser")
    errors = [f"{e.get('level')}: {e.get('message')}" for e in logs if e.get("level") == "SEVERE"]
    requests = _requests(driver)
    tables = driver.execute_script(_TABLES_JS)
    page_height = int(driver.execute_script("return document.documentElement.scrollHeight"))
    shot = None
    if screenshot is not None:
        shot = Path(screenshot)
        shot.parent.mkdir(parents=True, exist_ok=True)
        if full_page:
            width = int(driver.execute_script("return document.documentElement.scrollWidth"))
            driver.set_window_size(max(width, 800), min(page_height + 120, 30000))
        driver.save_screenshot(str(shot))
    return PageCheck(driver.title, len(images), broken, errors, dict(tables), shot, page_height, requests)


def _requests(driver: Any) -> list[str]:
    """Network URLs the browser asked for while showing the page (a self-contained page asks for none)."""
    import json

    urls = []
    try:
        entries = driver.get_log("performance")
    except Exception:  # older drivers without the performance log: nothing to check
        return urls
    for entry in entries:
        try:
            message = json.loads(entry["message"])["message"]
        except (KeyError, TypeError, ValueError):
            continue
        if message.get("method") == "Network.requestWillBeSent":
            url = message.get("params", {}).get("request", {}).get("url", "")
            if url.startswith(("http:", "https:", "ws:", "wss:", "ftp:")):  # the network (chrome:// is the browser)
                urls.append(url)
    return urls


def check_page(
    html_path: str | os.PathLike[str], screenshot: str | os.PathLike[str] | None = None, full_page: bool = True
) -> PageCheck:
    """Open ``html_path`` in headless Chromium and inspect it (see ``inspect``)."""
    with open_page(html_path) as driver:
        return inspect(driver, screenshot, full_page)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Open a report in headless Chromium and check it rendered.")
    parser.add_argument("html", help="report.html")
    parser.add_argument("--screenshot", help="PNG of the whole page")
    args = parser.parse_args(argv)
    check = check_page(args.html, args.screenshot)
    print(f"title: {check.title}\nimages: {check.images}, broken: {check.broken_images}")
    print(f"console errors: {check.console_errors}\nrequests: {check.requests}\ntables: {check.table_rows}")
    print(f"page height: {check.page_height}px; ok: {check.ok}")
    return 0 if check.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
