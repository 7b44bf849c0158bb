"""Recoloured copies: a list that ignores them does not match a picture whose hues were turned
or whose palette was swapped, while its faithful copies (re-encoded, scaled, brightened, given
a border, mirrored, made grey) still match; a list that counts them (the default) matches all."""

from __future__ import annotations

import io
import json
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageEnhance, ImageOps

from imagewatchd import colours
from imagewatchd.decoding import Settings, fingerprint_path
from imagewatchd.decoding.pool import WorkerPool
from imagewatchd.fingerprint import fingerprint_bytes
from imagewatchd.match import Matcher
from imagewatchd.models import Fingerprint, ListKind, Thresholds, VerdictKind
from imagewatchd.rows import NewEntry
from imagewatchd.store import Location, Store
from imagewatchd.store.spool import mirror_bank
from tests.conftest import OpenStore, Run, database_at_version, photo
from tests.daemon_harness import Daemon, iw
from tests.pgcluster import Cluster

THRESHOLDS = Thresholds(dhash=6, phash=4)
SIZE = (800, 600)


def artwork(
    seed: int, palette: tuple[str, str, str] = ("#2a0c00", "#d0602a", "#fff0b0")
) -> Image.Image:
    """A picture in a few warm colours (a poster, a wallpaper): the structure of ``photo``."""
    black, mid, white = palette
    return ImageOps.colorize(photo(seed, SIZE).convert("L"), black=black, mid=mid, white=white)


def hue_turned(img: Image.Image, turn: int = 85) -> Image.Image:
    """Hue turned by ``turn``/256 of the circle (85: 120 degrees, as bench/variants.py)."""
    hsv = np.array(img.convert("HSV"))
    hsv[..., 0] = (hsv[..., 0].astype(np.uint16) + turn) % 256
    return Image.fromarray(hsv, "HSV").convert("RGB")


def encoded(img: Image.Image, fmt: str = "PNG", **save: object) -> bytes:
    out = io.BytesIO()
    img.save(out, fmt, **save)
    return out.getvalue()


def fingerprint(img: Image.Image, fmt: str = "PNG", **save: object) -> Fingerprint:
    return fingerprint_bytes(encoded(img, fmt, **save), colours=True)


FAITHFUL: dict[str, Callable[[Image.Image], bytes]] = {
    "jpeg q75": lambda img: encoded(img, "JPEG", quality=75),
    "webp": lambda img: encoded(img, "WEBP", quality=80),
    "heic": lambda img: encoded(img, "HEIF", quality=80),
    "scaled to 25%": lambda img: encoded(img.resize((200, 150)), "JPEG", quality=85),
    "brightness +30%": lambda img: encoded(ImageEnhance.Brightness(img).enhance(1.3)),
    "contrast -30%": lambda img: encoded(ImageEnhance.Contrast(img).enhance(0.7)),
    "greyscale": lambda img: encoded(img.convert("L"), "JPEG", quality=90),
    "white border": lambda img: encoded(ImageOps.expand(img, 40, fill="white")),
    "mirrored": lambda img: encoded(ImageOps.mirror(img)),
    "turned 90": lambda img: encoded(img.transpose(Image.Transpose.ROTATE_90)),
}


@pytest.mark.parametrize("kind", sorted(FAITHFUL))
def test_a_faithful_copy_keeps_the_colours(kind: str) -> None:
    original = fingerprint(artwork(3))
    copy = fingerprint_bytes(FAITHFUL[kind](artwork(3)), colours=True)
    assert colours.agrees(original.colours, copy.colours), colours.distance(
        original.colours, copy.colours
    )


def test_a_recoloured_copy_disagrees_and_a_grey_picture_has_no_colours() -> None:
    original = fingerprint(artwork(3))
    assert colours.chroma(original.colours) >= colours.GREY
    for turn in (43, 85, 128):  # 60, 120 and 180 degrees
        turned = fingerprint(hue_turned(artwork(3), turn), "JPEG", quality=90)
        assert not colours.agrees(original.colours, turned.colours), turn
    swapped = fingerprint(artwork(3, ("#001030", "#2a70d0", "#d0f0ff")), "JPEG", quality=90)
    assert not colours.agrees(original.colours, swapped.colours)
    grey = fingerprint(artwork(3).convert("L"))
    assert grey.colours == b""  # a greyscale file: no chroma at all
    assert colours.agrees(original.colours, grey.colours)
    assert colours.agrees(grey.colours, original.colours)
    faint = fingerprint(artwork(3, ("#000000", "#808081", "#ffffff")))
    assert colours.chroma(faint.colours) < colours.GREY  # an almost grey picture
    assert colours.agrees(faint.colours, fingerprint(hue_turned(artwork(3))).colours)


def test_the_decoding_worker_sends_every_files_colours(tmp_path: Path) -> None:
    """An entry's fingerprint and any file's have the signature (stored with the file); a
    fingerprint made without (None: its JPEG's chroma is not even decoded) has the same
    hashes."""
    path = tmp_path / "banned.jpg"
    artwork(3).save(path, quality=90)
    decoder = WorkerPool(Settings(timeout=30.0, workers=1))
    try:
        entry = fingerprint_path(decoder, path, crops=True)[1]
        asked = fingerprint_path(decoder, path)[1]
    finally:
        decoder.close()
    expected = fingerprint_bytes(path.read_bytes()).colours
    plain = fingerprint_bytes(path.read_bytes(), colours=False)
    assert expected is not None and len(expected) == colours.SIZE
    assert entry.colours == asked.colours == expected
    assert plain.colours is None
    assert (plain.dhash, plain.phash, plain.pdq) == (asked.dhash, asked.phash, asked.pdq)


def test_the_store_says_whether_some_list_ignores_recoloured_copies(
    tmp_path: Path,
) -> None:
    store = Store(tmp_path / "db.sqlite")
    try:
        list_id = store.create_list("banned", ListKind.BLOCK, "", 0.0)
        assert not store.ignoring_recoloured()
        store.set_list_recoloured(list_id, "ignore")
        assert store.ignoring_recoloured()
        store.set_list_recoloured(list_id, "count")
        assert not store.ignoring_recoloured()
    finally:
        store.close()


def _entry(store: Store, name: str, fp: Fingerprint, recoloured: str) -> int:
    list_id = store.create_list(name, ListKind.BLOCK, "", 1.0)
    if recoloured != "count":
        store.set_list_recoloured(list_id, recoloured)
    entry = NewEntry(fp.sha256, fp.dhash, fp.phash, pdq=fp.pdq, pdq_quality=fp.pdq_quality,
                     colours=fp.colours or b"")  # fmt: skip
    (added,), _ = store.add_entries(list_id, [entry], 1.0)
    return added


def test_each_list_decides_and_the_store_keeps_setting_and_colours(new_store: OpenStore) -> None:
    original = fingerprint(artwork(5))
    turned = fingerprint(hue_turned(artwork(5)), "JPEG", quality=90)
    copy = fingerprint(artwork(5), "JPEG", quality=80)
    with new_store() as store:
        counted = _entry(store, "bans", original, "count")
        ignored = _entry(store, "originals", original, "ignore")
        assert {r.name: r.recoloured for r in store.lists()} == {
            "bans": "count", "originals": "ignore"}  # fmt: skip
        assert store.ignored_colours([counted, ignored]) == {ignored: original.colours}
        matcher = Matcher.load(store, THRESHOLDS)
        found = matcher.match(turned)
        assert found.kind is VerdictKind.KNOWN
        assert [m.list_name for m in found.matches] == ["bans"]
        assert {m.list_name for m in matcher.match(copy).matches} == {"bans", "originals"}
        assert {m.list_name for m in matcher.match(original).matches} == {"bans", "originals"}
        bans = store.get_list("bans")
        assert bans is not None
        store.set_list_recoloured(bans.id, "ignore")  # read at the next match: no reload
        assert matcher.match(turned).kind is VerdictKind.CLEAN
        store.remove_entries([ignored])
        assert store.ignored_colours([ignored]) == {}


def test_an_entry_without_colours_always_counts(tmp_path: Path) -> None:
    """Imported hashes come without pixels: a list that ignores recoloured copies still
    matches a recoloured copy of them (nothing says its colours differ)."""
    original = fingerprint(artwork(5))
    turned = fingerprint(hue_turned(artwork(5)), "JPEG", quality=90)
    with Store(tmp_path / "t.db") as store:
        list_id = store.create_list("imported", ListKind.BLOCK, "", 1.0)
        store.set_list_recoloured(list_id, "ignore")
        store.add_entries(list_id, [NewEntry(None, original.dhash, original.phash)], 1.0)
        assert Matcher.load(store, THRESHOLDS).match(turned).kind is VerdictKind.KNOWN


def test_a_setting_changed_on_one_host_holds_on_another(
    pg_cluster: Cluster, tmp_path: Path
) -> None:
    """A fleet: host B matches with the indexes it loaded; host A changes the list's setting;
    B's next match follows it (the setting is read with the entries a match found)."""
    url = pg_cluster.database()
    try:
        original = fingerprint(artwork(7))
        turned = fingerprint(hue_turned(artwork(7)), "JPEG", quality=90)
        with (
            Store(Location(tmp_path / "a" / "postgresql", url, "host-a")) as a,
            Store(Location(tmp_path / "b" / "postgresql", url, "host-b")) as b,
        ):
            _entry(a, "banned", original, "count")
            matcher = Matcher.load(b, THRESHOLDS)
            assert matcher.match(turned).kind is VerdictKind.KNOWN
            row = a.get_list("banned")
            assert row is not None
            a.set_list_recoloured(row.id, "ignore")
            assert matcher.match(turned).kind is VerdictKind.CLEAN
            assert matcher.match(original).kind is VerdictKind.KNOWN  # identical: always
    finally:
        pg_cluster.drop(url)


def test_lists_create_set_and_show_the_setting_and_check_follows(
    cli: Callable[..., Run], tmp_path: Path
) -> None:
    artwork(9).save(tmp_path / "poster.png")
    hue_turned(artwork(9)).save(tmp_path / "poster-blue.jpg", quality=90)
    artwork(9).convert("L").save(tmp_path / "poster-grey.jpg", quality=90)
    artwork(9).save(tmp_path / "poster.jpg", quality=85)
    out = cli("lists", "create", "posters", "--recoloured", "ignore", check=0).out
    assert "recoloured copies: ignore" in out
    cli("known", "add", "--list", "posters", str(tmp_path / "poster.png"), check=0)
    (shown,) = json.loads(cli("lists", "list", "--json", check=0).out)
    assert shown["recoloured"] == "ignore"
    assert "recoloured copies: ignore" in cli("lists", "list", check=0).out
    blue = tmp_path / "poster-blue.jpg"
    said = cli("check", str(blue), check=0).out.splitlines()
    assert said[0] == f"{blue}: clean"
    assert said[1].startswith("  set aside as a recoloured copy: list posters entry 1 ")
    cli("check", str(tmp_path / "poster-grey.jpg"), check=1)  # grey is not a recolour
    cli("check", str(tmp_path / "poster.jpg"), check=1)
    cli("lists", "set", "posters", "--recoloured", "count", check=0)
    assert cli("check", str(blue), check=1).out.startswith(f"{blue}: known")
    assert "invalid choice" in cli("lists", "set", "posters", "--recoloured", "maybe", check=2).err
    assert "no list named" in cli("lists", "set", "nothing", "--recoloured", "count", check=2).err


@pytest.fixture
def uploads_daemon(tmp_path: Path) -> Iterator[Daemon]:
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    config = {
        "quarantine_dir": str(tmp_path / "quarantine"), "rescan_interval": 0,
        "watches": [{"path": str(uploads), "role": "incoming", "on_known": "quarantine",
                     "include": ["*"], "settle_seconds": 0.5}],
    }  # fmt: skip
    daemon = Daemon(tmp_path, config)
    artwork(11).save(tmp_path / "banned.png")
    assert iw(daemon.db, "lists", "create", "banned").returncode == 0
    assert (
        iw(daemon.db, "known", "add", "--list", "banned", str(tmp_path / "banned.png")).returncode
        == 0
    )
    daemon.start()
    yield daemon
    daemon.kill()


def test_the_daemon_quarantines_a_recoloured_upload_until_the_list_ignores_them(
    uploads_daemon: Daemon, tmp_path: Path
) -> None:
    first = tmp_path / "uploads" / "recoloured-1.jpg"
    hue_turned(artwork(11)).save(first, quality=90)
    assert "known list=banned" in uploads_daemon.processed(first)
    assert not first.exists()
    changed = iw(uploads_daemon.db, "lists", "set", "banned", "--recoloured", "ignore")
    assert changed.returncode == 0, changed.stderr
    second = tmp_path / "uploads" / "recoloured-2.jpg"
    hue_turned(artwork(11), 90).save(second, quality=88)
    assert f"{second}: clean" in uploads_daemon.processed(second)
    assert second.exists()
    faithful = tmp_path / "uploads" / "copy.jpg"
    artwork(11).save(faithful, quality=80)
    assert "known list=banned" in uploads_daemon.processed(faithful)


def test_the_outage_spool_keeps_the_setting_and_the_colours(tmp_path: Path, pg_url: str) -> None:
    """A host that loses the database matches on its spool's copy of the bank: that copy
    follows a list's setting changed after it was made, and holds the entries' colours."""
    original = fingerprint(artwork(13))
    turned = fingerprint(hue_turned(artwork(13)), "JPEG", quality=90)
    with (
        Store(Location(tmp_path / "postgresql", pg_url, "h1")) as primary,
        Store(tmp_path / "spool.db") as spool,
    ):
        entry = _entry(primary, "banned", original, "count")
        last = mirror_bank(primary, spool, 0)
        assert Matcher.load(spool, THRESHOLDS).match(turned).kind is VerdictKind.KNOWN
        row = primary.get_list("banned")
        assert row is not None
        primary.set_list_recoloured(row.id, "ignore")
        assert mirror_bank(primary, spool, last) == entry
        assert spool.ignored_colours([entry]) == {entry: original.colours}
        assert Matcher.load(spool, THRESHOLDS).match(turned).kind is VerdictKind.CLEAN


def test_a_version_14_database_gains_the_setting_counting_as_before(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    db = database_at_version(path, 14)
    db.execute(
        "INSERT INTO lists (id, name, kind, description, created) VALUES (1, 'old', 'block', '', 1)"
    )
    db.close()
    with Store(path) as store:
        assert store.schema_version() >= 15
        assert [(r.name, r.recoloured) for r in store.lists()] == [("old", "count")]
        assert store.check(thorough=True) == []
        (row,) = store.lists()
        store.set_list_recoloured(row.id, "ignore")
        assert store.check(thorough=True) == []
        with pytest.raises(sqlite3.IntegrityError):
            store.set_list_recoloured(row.id, "sometimes")


def test_a_fleet_daemon_follows_a_setting_changed_through_another_host(
    tmp_path: Path, pg_url: str
) -> None:
    """A daemon on the shared PostgreSQL bank: the list's setting, changed by a command run
    as another host, holds at the daemon's next upload (no restart, no reload)."""
    uploads = tmp_path / "b" / "uploads"
    uploads.mkdir(parents=True)
    artwork(17).save(tmp_path / "banned.png")
    other = {"XDG_STATE_HOME": str(tmp_path / "a" / "state")}
    made = iw(pg_url, "lists", "create", "banned", env=other)
    assert made.returncode == 0, made.stderr
    added = iw(pg_url, "known", "add", "--list", "banned", str(tmp_path / "banned.png"), env=other)
    assert added.returncode == 0, added.stderr
    config = {
        "host": "b", "quarantine_dir": str(tmp_path / "b" / "quarantine"), "rescan_interval": 0,
        "watches": [{"path": str(uploads), "role": "incoming", "on_known": "quarantine",
                     "include": ["*"], "settle_seconds": 0.5}],
    }  # fmt: skip
    env = {"XDG_STATE_HOME": str(tmp_path / "b" / "state")}
    daemon = Daemon(tmp_path / "b", config, url=pg_url, env=env).start()
    try:
        first = uploads / "recoloured-1.jpg"
        hue_turned(artwork(17)).save(first, quality=90)
        assert "known list=banned" in daemon.processed(first)
        changed = iw(pg_url, "lists", "set", "banned", "--recoloured", "ignore", env=other)
        assert changed.returncode == 0, changed.stderr
        second = uploads / "recoloured-2.jpg"
        hue_turned(artwork(17), 90).save(second, quality=88)
        assert f"{second}: clean" in daemon.processed(second)
        assert second.exists()
        assert daemon.stop() == 0
    finally:
        daemon.kill()


def test_compare_says_what_a_list_that_ignores_recoloured_copies_decides(
    cli: Callable[..., Run], tmp_path: Path
) -> None:
    """compare's colours line agrees with what ``check`` does under an ``ignore`` list."""
    poster, blue, grey, copy = (tmp_path / f"{name}" for name in (
        "poster.png", "poster-blue.jpg", "poster-grey.jpg", "poster.jpg"))  # fmt: skip
    artwork(9).save(poster)
    hue_turned(artwork(9)).save(blue, quality=90)
    artwork(9).convert("L").save(grey, quality=90)
    artwork(9).save(copy, quality=85)
    cli("lists", "create", "posters", "--recoloured", "ignore", check=0)
    cli("known", "add", "--list", "posters", str(poster), check=0)
    for query, refused in ((blue, True), (grey, False), (copy, False)):
        lines = cli("compare", str(poster), str(query), check=0).out.splitlines()
        (said,) = [line for line in lines if line.startswith("  colours: ")]
        assert said.endswith("does not match it" if refused else "matches it too"), said
        result = json.loads(cli("compare", "--json", str(poster), str(query), check=0).out)
        assert result["as_list_entry"]["outcome"] == "match"  # as a list that counts them
        assert result["as_list_entry"]["recoloured"]["ignore_list_matches"] is not refused
        cli("check", str(query), check=0 if refused else 1)  # what the ignore list does


def test_scan_act_decodes_a_stored_upload_again_for_its_colours(
    cli: Callable[..., Run], tmp_path: Path
) -> None:
    """A stored upload matched again (``scan --act``, a watch without orientations) is refused
    as recoloured by a list that ignores recoloured copies, and counts once the list does."""
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    artwork(9).save(tmp_path / "poster.png")
    blue = uploads / "poster-blue.jpg"
    hue_turned(artwork(9)).save(blue, quality=90)
    config = tmp_path / "config.yaml"
    config.write_text(
        f"quarantine_dir: {tmp_path / 'q'}\nwatches:\n  - path: {uploads}\n    role: incoming\n"
        "    on_known: quarantine\n    orientations: none\n"
    )
    cli("lists", "create", "posters", "--recoloured", "ignore", check=0)
    cli("known", "add", "--list", "posters", str(tmp_path / "poster.png"), check=0)
    cli("--config", str(config), "scan", str(uploads), check=0)  # stored: hashes, no colours
    cli("--config", str(config), "scan", "--act", str(uploads), check=0)
    assert blue.exists(), "a recoloured copy is not a copy for this list"
    cli("lists", "set", "posters", "--recoloured", "count", check=0)
    cli("--config", str(config), "scan", "--act", str(uploads), check=0)
    assert not blue.exists()
