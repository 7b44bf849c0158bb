"""Similar is not duplicate (issue 10, item 4): burst shots and near frames within the similar
band are reported as ``similar``, never as duplicates, and never acted on unless configured."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml
from PIL import Image

from imagewatchd.act import Actor
from imagewatchd.config import DEFAULT_INCLUDE, Action, default_config, parse
from imagewatchd.decoding.inline import InlineDecoder
from imagewatchd.errors import ConfigError
from imagewatchd.filters import Selection
from imagewatchd.match import Matcher
from imagewatchd.models import FileStat, SettledFile, VerdictKind
from imagewatchd.pipeline import Pipeline
from imagewatchd.review.app import Secrets, create_app
from imagewatchd.review.state import Review
from imagewatchd.scan import Scanner
from imagewatchd.store import Store
from tests.conftest import Run, photo
from tests.test_match import add_library, fp_of

THRESHOLDS = default_config().matching.thresholds
HOST = {"Host": "127.0.0.1:8421"}


def frames(seed: int = 33, step: int = 16) -> tuple[Image.Image, Image.Image]:
    """Two frames of one scene, the camera moved by ``step`` pixels between them."""
    scene = photo(seed, (720, 540))
    return scene.crop((0, 0, 640, 480)), scene.crop((step, step // 2, 640 + step, 480 + step // 2))


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(tmp_path / "t.db") as s:
        yield s


def test_a_burst_frame_is_similar_a_resized_copy_a_duplicate_another_photo_clean(
    store: Store, tmp_path: Path
) -> None:
    first, second = frames()
    matcher = Matcher.load(store, THRESHOLDS)
    add_library(store, matcher, tmp_path / "lib" / "frame1.jpg", fp_of(first, "JPEG", quality=92))
    verdict = matcher.match(fp_of(second, "JPEG", quality=92))
    assert verdict.kind is VerdictKind.SIMILAR
    (m,) = verdict.matches
    assert m.path == str(tmp_path / "lib" / "frame1.jpg")
    assert THRESHOLDS.dhash < m.dhash_distance <= THRESHOLDS.similar_dhash or (
        THRESHOLDS.phash < m.phash_distance <= THRESHOLDS.similar_phash
    )
    copy = matcher.match(fp_of(first.resize((320, 240)), "JPEG", quality=70))
    assert copy.kind is VerdictKind.DUPLICATE  # a duplicate is never merely similar
    assert matcher.match(fp_of(photo(34))).kind is VerdictKind.CLEAN


def test_the_band_off_makes_a_burst_frame_clean(store: Store, tmp_path: Path) -> None:
    first, second = frames()
    config = parse({"matching": {"similar_dhash": 0, "similar_phash": 0}}, "test")
    matcher = Matcher.load(store, config.matching.thresholds)
    add_library(store, matcher, tmp_path / "lib" / "frame1.jpg", fp_of(first, "JPEG", quality=92))
    assert matcher.match(fp_of(second, "JPEG", quality=92)).kind is VerdictKind.CLEAN


def test_the_band_is_searched_for_a_library_not_for_an_incoming_watch_that_only_logs(
    tmp_path: Path,
) -> None:
    """An upload like a library photo is nothing to an incoming watch: its verdict is clean
    (the band's search is not run); the same frame arriving in the library is similar."""
    first, second = frames()
    lib, uploads, calm = tmp_path / "lib", tmp_path / "uploads", tmp_path / "calm"
    lib.mkdir()
    first.save(lib / "frame1.jpg", quality=92)
    watches = [
        {"path": str(lib)},
        {"path": str(uploads), "role": "incoming", "on_similar": "quarantine"},
        {"path": str(calm), "role": "incoming"},  # on_similar: log
    ]
    config = parse({"watches": watches}, "test")
    outcomes = {}
    with Store(tmp_path / "t.db") as store:
        matcher = Matcher.load(store, config.matching.thresholds)
        actor = Actor(store, config, tmp_path / "quarantine")
        pipeline = Pipeline(store, matcher, actor, config, InlineDecoder())
        pipeline.process(_settled(lib / "frame1.jpg", 0), act=False)
        for index, folder in reversed(list(enumerate((lib, uploads, calm)))):
            folder.mkdir(exist_ok=True)  # the library's last: then it holds both frames
            second.save(folder / "frame2.jpg", quality=92)
            outcomes[folder.name] = pipeline.process(_settled(folder / "frame2.jpg", index))
    assert outcomes["lib"].verdict is VerdictKind.SIMILAR
    assert outcomes["uploads"].verdict is VerdictKind.SIMILAR  # on_similar acts there
    assert outcomes["uploads"].action == "quarantine"
    assert outcomes["calm"].verdict is VerdictKind.CLEAN
    assert outcomes["calm"].action == "none"


def _settled(path: Path, watch: int) -> SettledFile:
    return SettledFile(str(path), watch, FileStat.of(path.stat()))


def test_on_similar_is_parsed_and_move_needs_move_to(tmp_path: Path) -> None:
    watch = {"path": str(tmp_path), "on_similar": "move", "move_to": str(tmp_path.parent / "x")}
    assert parse({"watches": [watch]}, "t").watches[0].on_similar is Action.MOVE
    assert parse({"watches": [{"path": str(tmp_path)}]}, "t").watches[0].on_similar is Action.LOG
    with pytest.raises(ConfigError, match=r"move_to: required"):
        parse({"watches": [{"path": str(tmp_path), "on_similar": "move"}]}, "t")
    for key in ("on_known", "on_similar"):
        with pytest.raises(ConfigError, match=rf"{key}: 'hardlink' is for duplicates"):
            parse({"watches": [{"path": str(tmp_path), key: "hardlink"}]}, "t")


def library(tmp_path: Path) -> Path:
    lib = tmp_path / "library"
    (lib / "burst").mkdir(parents=True)
    first, second = frames()
    first.save(lib / "burst" / "frame1.jpg", quality=92)
    second.save(lib / "burst" / "frame2.jpg", quality=92)
    first.resize((320, 240)).save(lib / "frame1 small.jpg", quality=80)  # a duplicate of frame1
    photo(35).save(lib / "other.jpg", quality=92)
    return lib


def test_dupes_lists_similar_groups_apart_and_scan_act_moves_no_similar_picture(
    tmp_path: Path, cli: Callable[..., Run]
) -> None:
    lib, aside = library(tmp_path), tmp_path / "aside"
    config = tmp_path / "config.yaml"
    watch = {"path": str(lib), "role": "library", "on_duplicate": "move", "move_to": str(aside)}
    config.write_text(yaml.safe_dump({"watches": [watch]}))
    cli("--config", str(config), "scan", str(lib), check=0)
    text = cli("--config", str(config), "dupes", check=0).out
    assert "group 1 (2 files)" in text and "similar group 1 (2 pictures, not duplicates)" in text
    only = cli("--config", str(config), "dupes", "--similar", check=0).out
    assert only.startswith("similar group 1") and "frame1 small" not in only
    data = json.loads(cli("--config", str(config), "dupes", "--json", check=0).out)
    (duplicates,) = data["groups"]
    assert {Path(f["path"]).name for f in duplicates["files"]} == {"frame1.jpg", "frame1 small.jpg"}
    (similar,) = data["similar"]
    assert sorted(Path(f["path"]).name for f in similar) == ["frame1.jpg", "frame2.jpg"]
    assert similar[0]["distance_to_first"] == {"dhash": 0, "phash": 0}
    far = similar[1]["distance_to_first"]
    assert far["dhash"] > THRESHOLDS.dhash or far["phash"] > THRESHOLDS.phash

    acted = cli("--config", str(config), "scan", "--act", str(lib), check=0)
    assert (lib / "burst" / "frame1.jpg").exists() and (lib / "burst" / "frame2.jpg").exists()
    assert not (lib / "frame1 small.jpg").exists(), acted
    assert [p.name for p in aside.rglob("*.jpg")] == ["frame1 small.jpg"]


def test_the_review_page_has_a_tab_for_similar_groups(tmp_path: Path) -> None:
    lib = library(tmp_path)
    db = tmp_path / "state" / "imagewatchd.db"
    config = parse({"watches": [{"path": str(lib), "role": "library"}]}, "<test>")
    with Store(db) as store:
        Scanner(
            store, Matcher.load(store, THRESHOLDS), Selection(DEFAULT_INCLUDE), InlineDecoder()
        ).scan([lib])
    review = Review(config, db, InlineDecoder())
    try:
        keys = Secrets()
        client = create_app(review, keys).test_client()
        page = client.get(f"/{keys.url}/similar", headers=HOST).get_data(as_text=True)
        assert "1 group(s) of similar pictures" in page
        assert page.count('<figure class="file"') == 2
        assert "frame2.jpg" in page and "frame1 small" not in page
        assert f'href="/{keys.url}/similar" aria-current="page"' in page
    finally:
        review.close()
