#!/usr/bin/env python3
"""The review page at scale: how long ``imagewatchd review`` takes to find the groups before it
prints its address, and how long the first screen (and a filtered one) then takes to serve.

On a synthetic store (``bench/synth_store.py``; 500,000 rows give about 10,000 groups), through
the real Flask application and its store thread, requests made by Werkzeug's test client (the
server's own time; the browser adds its rendering). The synthetic files do not exist, so the
page's thumbnails are not part of it: a thumbnail is made once, by a worker, then served from
the cache (``--thumbnail`` times one for a real photo).

    .venv/bin/python bench/review_page.py /tmp/store-500k.db
"""

from __future__ import annotations

import argparse
import io
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

from imagewatchd.config import parse
from imagewatchd.decoding import Settings
from imagewatchd.decoding.inline import InlineDecoder
from imagewatchd.decoding.pool import WorkerPool
from imagewatchd.dupes import groups_among
from imagewatchd.fingerprint import open_path
from imagewatchd.review.app import Secrets, create_app
from imagewatchd.review.state import Review

REPEAT = 5


def _timed(client: object, url: str) -> tuple[float, int]:
    """The best of REPEAT requests, in seconds, and the page's size."""
    best, size = float("inf"), 0
    for _ in range(REPEAT):
        start = time.perf_counter()
        response = client.get(url, headers={"Host": "127.0.0.1"})  # type: ignore[attr-defined]
        best = min(best, time.perf_counter() - start)
        assert response.status_code == 200, response.status_code
        size = len(response.data)
    return best, size


def page_times(db: Path) -> None:
    config = parse({"watches": []}, "<bench>")
    review = Review(config, db, InlineDecoder())
    try:
        start = time.perf_counter()
        groups = review.run(review.groups)
        print(f"groups found before the address is printed: {len(groups):,} groups "
              f"in {time.perf_counter() - start:.2f} s")  # fmt: skip
        keys = Secrets()
        client = create_app(review, keys).test_client()
        folder = os.path.dirname(groups[len(groups) // 2].best.path) + "/"
        group = groups[len(groups) // 2]
        start = time.perf_counter()
        review.run(lambda: groups_among(review.matcher, list(group.files)))
        print(f"regrouping one group after a click: {(time.perf_counter() - start) * 1000:.1f} ms")
        for what, query in (
            ("first screen (25 groups)", ""), ("page 200", "?page=200"),
            ("folder filter", f"?folder={folder}"),
            ("date filter", "?since=2023-11-14&until=2023-11-14"),
        ):  # fmt: skip
            seconds, size = _timed(client, f"/{keys.url}/{query}")
            print(f"{what}: {seconds * 1000:.0f} ms, {size / 1024:.0f} KiB")
    finally:
        review.close()


def thumbnail_time() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "photo.jpg"
        Image.effect_mandelbrot((4000, 3000), (-2, -1.2, 1, 1.2), 100).convert("RGB").save(path)
        pool = WorkerPool(Settings(workers=1))
        try:
            pool.start()
            fd = open_path(path)
            try:
                start = time.perf_counter()
                _, jpeg = pool.thumbnail(fd, path)
                seconds = time.perf_counter() - start
            finally:
                os.close(fd)
        finally:
            pool.close()
    size = Image.open(io.BytesIO(jpeg)).size
    print(f"one thumbnail of a 12 Mpx JPEG by a worker: {seconds * 1000:.0f} ms, {size}, "
          f"{len(jpeg) / 1024:.0f} KiB")  # fmt: skip


def browser_time(db: Path) -> None:
    """``imagewatchd review`` started for real, its first screen loaded by headless Chromium."""
    from selenium import webdriver  # noqa: PLC0415 (the test extra)
    from selenium.webdriver.chrome.service import Service  # noqa: PLC0415

    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "config.yaml"
        config.write_text(f"quarantine_dir: {tmp}/quarantine\nwatches: []\n")
        command = [sys.executable, "-m", "imagewatchd", "--config", str(config), "--db", str(db),
                   "review"]  # fmt: skip
        start = time.perf_counter()
        with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as server:
            assert server.stdout is not None
            url = server.stdout.readline().split()[-1]
            print(f"review started, address printed: {time.perf_counter() - start:.1f} s")
            options = webdriver.ChromeOptions()
            options.binary_location = "/usr/bin/chromium"
            for flag in ("--headless=new", "--no-sandbox", "--disable-gpu"):
                options.add_argument(flag)
            driver = webdriver.Chrome(options, Service(executable_path="/usr/bin/chromedriver"))
            try:
                for attempt in range(3):
                    start = time.perf_counter()
                    driver.get(url)  # returns when the page has loaded
                    print(f"first screen in Chromium ({attempt + 1}): "
                          f"{(time.perf_counter() - start) * 1000:.0f} ms")  # fmt: skip
            finally:
                driver.quit()
                server.terminate()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("db", type=Path, help="a store made by bench/synth_store.py")
    parser.add_argument("--thumbnail", action="store_true", help="also time one thumbnail")
    parser.add_argument("--browser", action="store_true", help="also time it in Chromium")
    args = parser.parse_args()
    page_times(args.db)
    if args.browser:
        browser_time(args.db)
    if args.thumbnail:
        thumbnail_time()
    return 0


if __name__ == "__main__":
    sys.exit(main())
