"""The review page for tests: ``imagewatchd review`` as a real subprocess, and a real headless
Chromium (Debian's ``chromium`` and ``chromium-driver``) driven through Selenium."""

from __future__ import annotations

import os
import select
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service

from tests.daemon_harness import ENV

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
DRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
DOCS = Path(__file__).resolve().parent.parent / "docs"
SCREENSHOTS = os.environ.get("IMAGEWATCHD_SCREENSHOTS") == "docs"  # rewrite docs/*.png


@contextmanager
def review_server(config: Path, db: Path, *extra: str) -> Iterator[str]:
    """``imagewatchd review`` running; yields the URL it printed (with its secret)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "imagewatchd", "--config", str(config), "--db", str(db), "review",
         *extra],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=ENV, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    try:
        yield _url_from(proc)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        proc.stdout.close()


def _url_from(proc: subprocess.Popen[str]) -> str:
    assert proc.stdout is not None
    deadline = time.monotonic() + 60
    said = []
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 1.0)
        if not ready:
            continue
        line = proc.stdout.readline()
        if not line:
            break
        said.append(line)
        if line.startswith("review page: "):
            return line.split()[-1]
    raise AssertionError(f"no URL from imagewatchd review:\n{''.join(said)}")


@contextmanager
def browser() -> Iterator[webdriver.Chrome]:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--window-size=1280,900", "--disable-extensions", "--no-first-run"):  # fmt: skip
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=DRIVER))
    try:
        yield driver
    finally:
        driver.quit()


def status(url: str, *, host: str | None = None, data: bytes | None = None) -> int:
    """The HTTP status of one request (no redirect followed)."""
    request = urllib.request.Request(url, data=data)
    if host is not None:
        request.add_header("Host", host)
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(request, timeout=30) as response:
            code: int = response.status
            return code
    except urllib.error.HTTPError as exc:
        return exc.code


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


def fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=60) as response:
        body: bytes = response.read()
        return body


def screenshot(driver: webdriver.Chrome, name: str, tmp_path: Path) -> Path:
    """Into the test's directory; into docs/ too with IMAGEWATCHD_SCREENSHOTS=docs."""
    target = (DOCS if SCREENSHOTS else tmp_path) / name
    assert driver.save_screenshot(str(target))
    return target
