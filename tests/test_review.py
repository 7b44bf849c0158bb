"""``imagewatchd review`` in a real headless Chromium: the groups and their thumbnails, decisions
taken by clicking (then honoured by ``dupes`` and by a running daemon), the quarantine, the
secret, and a hostile file name."""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.expected_conditions import staleness_of
from selenium.webdriver.support.ui import WebDriverWait

from imagewatchd.decoding.inline import InlineDecoder
from imagewatchd.fingerprint import open_path
from imagewatchd.names import shown
from imagewatchd.store import Store
from tests.conftest import photo
from tests.daemon_harness import Daemon, iw, sha256
from tests.review_harness import browser, fetch, review_server, screenshot, status

HOSTILE = '<img src=x onerror="document.title=1">\udcff.jpg'  # HTML, and a byte not UTF-8


@pytest.fixture
def library(tmp_path: Path) -> Path:
    """Two groups: a (kept: more pixels) with b and a hostile-named copy of b; c with d."""
    lib = tmp_path / "library"
    lib.mkdir()
    photo(11, (800, 600)).save(lib / "a.jpg", quality=92)
    photo(11, (400, 300)).save(lib / "b.jpg", quality=92)
    shutil.copy(lib / "b.jpg", lib / HOSTILE)
    photo(21, (800, 600)).save(lib / "c.jpg", quality=92)
    photo(21, (400, 300)).save(lib / "d.jpg", quality=92)
    photo(31).save(lib / "alone.jpg", quality=92)
    return lib


def _config(tmp_path: Path, library: Path) -> dict[str, Any]:
    return {
        "quarantine_dir": str(tmp_path / "quarantine"),
        "watches": [{"path": str(library), "role": "library", "on_duplicate": "move",
                     "move_to": str(tmp_path / "dupes"), "settle_seconds": 0.2}],
    }  # fmt: skip


@pytest.fixture
def daemon(tmp_path: Path, library: Path) -> Iterator[Daemon]:
    d = Daemon(tmp_path, _config(tmp_path, library))
    yield d
    d.kill()


def _scan(daemon: Daemon, library: Path) -> None:
    assert iw(daemon.db, "scan", str(library), config=daemon.config_path).returncode == 0


def _figures(section: WebElement) -> list[WebElement]:
    return section.find_elements(By.CSS_SELECTOR, "figure.file")


def _path_text(figure: WebElement) -> str:
    return str(figure.find_element(By.CSS_SELECTOR, "p.path").text)


def _groups(driver: WebDriver) -> list[list[str]]:
    sections = driver.find_elements(By.CSS_SELECTOR, "section.group")
    return [[_path_text(f) for f in _figures(s)] for s in sections]


def _figure(driver: WebDriver, path: Path) -> WebElement:
    for figure in driver.find_elements(By.CSS_SELECTOR, "figure.file"):
        if _path_text(figure) == shown(str(path)):
            return figure
    raise AssertionError(f"{path} not on the page: {_groups(driver)}")


def _click(driver: WebDriver, button: WebElement) -> str:
    """Click, wait for the page that follows, and return its notice."""
    button.click()
    WebDriverWait(driver, 60).until(staleness_of(button))  # the page that follows is loading
    WebDriverWait(driver, 30).until(lambda d: d.find_elements(By.CSS_SELECTOR, "p.notice"))
    return str(driver.find_element(By.CSS_SELECTOR, "p.notice").text)


def _images_loaded(driver: WebDriver) -> bool:
    return bool(driver.execute_script(
        "return Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)"
    ))  # fmt: skip


def _thumbnail_of(path: Path) -> bytes:
    fd = open_path(path)
    try:
        return InlineDecoder().thumbnail(fd, path)[1]
    finally:
        os.close(fd)


def test_groups_with_their_thumbnails_and_a_hostile_name_shown_escaped(
    daemon: Daemon, library: Path, tmp_path: Path
) -> None:
    _scan(daemon, library)
    stray = daemon.db.parent / "thumbs" / f"{'0' * 64}.jpg"  # no file holds it: pruned at start
    stray.parent.mkdir()
    stray.write_bytes(b"old")
    with review_server(daemon.config_path, daemon.db) as url, browser() as driver:
        driver.get(url)
        a, b, c, d = (library / n for n in ("a.jpg", "b.jpg", "c.jpg", "d.jpg"))
        assert _groups(driver) == [
            [str(a), str(b), shown(str(library / HOSTILE))],  # b: older than its copy
            [str(c), str(d)],
        ]
        assert driver.title == "imagewatchd review"  # the name's onerror never ran
        assert driver.find_elements(By.CSS_SELECTOR, "img[src=x]") == []
        assert "\\xff.jpg" in _path_text(_figure(driver, library / HOSTILE))
        keeper = _figure(driver, a).find_element(By.CSS_SELECTOR, ".badge").text
        assert keeper == "Keeper: pixels: 800x600 over 400x300"
        assert re.fullmatch(r"distance: dHash \d+, pHash \d+", _distance(_figure(driver, b)))
        assert "400x300 · 31" in _figure(driver, b).text and "JPEG" in _figure(driver, b).text
        WebDriverWait(driver, 60).until(lambda _: _images_loaded(driver))
        for figure in driver.find_elements(By.CSS_SELECTOR, "figure.file"):
            src = figure.find_element(By.TAG_NAME, "img").get_attribute("src")
            path = next(p for p in (a, b, c, d, library / HOSTILE) if shown(str(p)) ==
                        _path_text(figure))  # fmt: skip
            assert fetch(str(src)) == _thumbnail_of(path), path
        _keys(driver, "j", "j")
        assert driver.switch_to.active_element.get_attribute("id") == f"g{_id(driver, c)}"
        _keys(driver, "k", Keys.TAB)  # from the first group's frame to its first button
        assert driver.switch_to.active_element.text == "Keep this one"
        assert driver.switch_to.active_element.value_of_css_property("outline-style") == "solid"
        driver.execute_script("window.scrollTo(0, 0)")
        screenshot(driver, "review-groups.png", tmp_path)
    kept = {p.name for p in (daemon.db.parent / "thumbs").iterdir()}
    assert kept == {f"{sha256(p)}.jpg" for p in (a, b, c, d)}  # the copy of b shares b's


def _keys(driver: WebDriver, *keys: str) -> None:
    for key in keys:
        ActionChains(driver).send_keys(key).perform()


def _id(driver: WebDriver, path: Path) -> str:
    return str(_figure(driver, path).get_attribute("data-file"))


def _distance(figure: WebElement) -> str:
    return str(figure.find_element(By.CSS_SELECTOR, ".distance").text)


def _dupes(daemon: Daemon) -> list[list[str]]:
    out = iw(daemon.db, "dupes", "--json", config=daemon.config_path).stdout
    return [[f["path"] for f in g["files"]] for g in json.loads(out)["groups"]]


def test_keep_and_not_duplicate_by_clicking_are_honoured_by_dupes_and_the_daemon(
    daemon: Daemon, library: Path, tmp_path: Path
) -> None:
    (library / HOSTILE).unlink()
    outside = tmp_path / "outside"
    outside.mkdir()
    for name in ("b.jpg", "d.jpg"):
        shutil.copy(library / name, outside / name)
    daemon.start()
    with review_server(daemon.config_path, daemon.db) as url, browser() as driver:
        driver.get(url)
        button = _figure(driver, library / "d.jpg").find_element(By.CSS_SELECTOR, ".not-duplicate")
        assert _click(driver, button).startswith("decision 1: not duplicates: ")
        button = _figure(driver, library / "b.jpg").find_element(By.CSS_SELECTOR, "button.keep")
        assert _click(driver, button) == f"decision 2: keep {library / 'b.jpg'}"
        assert _groups(driver) == [[str(library / "b.jpg"), str(library / "a.jpg")]]
        badge = _figure(driver, library / "b.jpg").find_element(By.CSS_SELECTOR, ".badge")
        assert badge.text == "Keeper: kept by decision 2"
    assert _dupes(daemon) == [[str(library / "b.jpg"), str(library / "a.jpg")]]
    shutil.copy(outside / "b.jpg", library / "b2.jpg")  # the kept picture: stays
    line = daemon.processed(library / "b2.jpg")
    assert "duplicate" in line and "kept: by decision 2" in line
    (library / "d.jpg").unlink()
    _until_forgotten(daemon.db, library / "d.jpg")
    shutil.copy(outside / "d.jpg", library / "d2.jpg")  # not a duplicate of c.jpg: stays
    assert "clean -> indexed" in daemon.processed(library / "d2.jpg")
    assert daemon.stop() == 0


def _until_forgotten(db: Path, path: Path) -> None:
    """The daemon forgets a deleted file's row (it logs nothing for it)."""
    deadline = time.monotonic() + 20
    while True:
        with Store(db) as store:
            if store.get_file(str(path)) is None:
                return
        assert time.monotonic() < deadline, f"{path}: still in the store"
        time.sleep(0.05)


def test_apply_acts_on_the_copies_as_one_batch_that_undo_reverses(
    daemon: Daemon, library: Path
) -> None:
    _scan(daemon, library)
    with review_server(daemon.config_path, daemon.db) as url, browser() as driver:
        driver.get(url)
        section = driver.find_elements(By.CSS_SELECTOR, "section.group")[1]  # c.jpg and d.jpg
        notice = _click(driver, section.find_element(By.CSS_SELECTOR, "button.apply"))
        assert re.fullmatch(r"batch (\d+): applied move to the copies; undo it with: "
                            r"imagewatchd undo --batch \1", notice)  # fmt: skip
        assert _groups(driver)[1:] == []
    moved = daemon.base / "dupes" / "d.jpg"
    assert moved.exists() and not (library / "d.jpg").exists()
    batch = notice.split()[1].rstrip(":")
    assert iw(daemon.db, "undo", "--batch", batch, config=daemon.config_path).returncode == 0
    assert (library / "d.jpg").exists() and not moved.exists()


def test_the_secret_guards_every_request(daemon: Daemon, library: Path) -> None:
    _scan(daemon, library)
    with review_server(daemon.config_path, daemon.db) as url:
        root, secret = url.rstrip("/").rsplit("/", 1)
        assert status(url) == 200
        assert status(root + "/") == 403
        assert status(f"{root}/{secret[:-1]}/") == 403
        assert status(f"{root}/thumb/1") == 403
        assert status(f"{root}/{secret}x/thumb/1") == 403
        assert status(url, host="attacker.example") == 403  # DNS rebinding
        assert status(url, host=f"localhost:{root.rsplit(':', 1)[1]}") == 200
        form = b"id=2&back="
        assert status(url + "keep", data=form) == 403  # the form's secret is missing
        assert status(url + "keep", data=form + b"&csrf=guess") == 403
        csrf = re.search(r'name="csrf" value="([^"]+)"', fetch(url).decode())
        assert csrf is not None
        with Store(daemon.db) as store:
            hostile = store.get_file(str(library / HOSTILE))
        assert hostile is not None
        with (library / HOSTILE).open("ab") as edited:
            edited.write(b"edited")  # since it was indexed: refused, with the name escaped
        form = f"id={hostile.id}&csrf={csrf[1]}".encode()
        assert status(url + "keep", data=form) == 302
        page = fetch(url).decode()
        assert "\\xff.jpg changed since it was indexed: scan it again" in page
        assert "&lt;img src=x onerror=&#34;document.title=1&#34;&gt;" in page
    with Store(daemon.db) as store:
        assert store.decisions() == []


def test_quarantine_tab_blurs_and_restores(tmp_path: Path, make_image: Any) -> None:
    uploads, banned = tmp_path / "uploads", make_image("banned.jpg", seed=41, quality=92)
    uploads.mkdir()
    photo(41, (500, 375)).save(uploads / "upload.jpg", quality=85)  # near the banned picture
    photo(41, (600, 450)).save(uploads / "second.jpg", quality=80)
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({
        "quarantine_dir": str(tmp_path / "quarantine"),
        "watches": [{"path": str(uploads), "role": "incoming", "on_known": "quarantine"}],
    }))  # fmt: skip
    db = tmp_path / "state" / "imagewatchd.db"
    for args in (("known", "add", "--list", "banned", "--create", "--label", "a cat",
                  str(banned)), ("scan", "--act", str(uploads))):  # fmt: skip
        assert iw(db, *args, config=config).returncode == 0
    assert not (uploads / "upload.jpg").exists()
    with review_server(config, db) as url, browser() as driver:
        driver.get(url + "quarantine")
        section = driver.find_elements(By.CSS_SELECTOR, "section.quarantined")[0]  # newest first
        assert str(uploads / "upload.jpg") in section.text and "'a cat'" in section.text
        WebDriverWait(driver, 60).until(lambda _: _images_loaded(driver))
        image = section.find_element(By.CSS_SELECTOR, "button.reveal img")
        assert "blur" in image.value_of_css_property("filter")
        screenshot(driver, "review-quarantine.png", tmp_path)  # blurred, as users first see it
        section.find_element(By.CSS_SELECTOR, "button.reveal").click()
        assert image.value_of_css_property("filter") == "none"
        notice = _click(driver, section.find_element(By.CSS_SELECTOR, "button.restore"))
        assert notice == f"action 2: back at {uploads / 'upload.jpg'}"
        (section,) = driver.find_elements(By.CSS_SELECTOR, "section.quarantined")
        stored = _stored(db, 1)
        notice = _click(driver, section.find_element(By.CSS_SELECTOR, "button.delete"))
        assert notice == f"action 1: deleted {stored}"
        assert driver.find_elements(By.CSS_SELECTOR, "section.quarantined") == []
    assert (uploads / "upload.jpg").exists() and not (uploads / "second.jpg").exists()
    assert not Path(stored).exists()
    assert iw(db, "quarantine", "list", config=config).stdout == "the quarantine is empty\n"


def _stored(db: Path, action_id: int) -> str:
    with Store(db) as store:
        action = store.action(action_id)
    assert action is not None and action.dst_root is not None
    return f"{action.dst_root}/{action.dst_rel}"


def test_html_report_embeds_the_thumbnails(daemon: Daemon, library: Path, tmp_path: Path) -> None:
    _scan(daemon, library)
    report = tmp_path / "report.html"
    run = iw(daemon.db, "review", "--html", str(report), config=daemon.config_path)
    assert run.returncode == 0, run.stderr
    assert run.stdout == f"wrote 2 group(s) to {report}\n"
    html = report.read_text()
    assert html.count('src="data:image/jpeg;base64,') == 5
    assert "&lt;img src=x onerror=&#34;document.title=1&#34;&gt;\\xff.jpg" in html
    assert "<form" not in html and "<script" not in html
