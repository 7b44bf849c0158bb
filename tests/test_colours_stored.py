"""Each file's colour signature stored with its fingerprint (``files.colours``; NULL: never
computed), so that whatever matches a stored fingerprint again (``scan --act``, the count
``known add`` prints, a retroactive ban) honours a list that ignores recoloured copies
without decoding the file again; an entry's colours written in the entry's own transaction;
a refusal as recoloured visible in ``check``, ``check --json`` and the verdict line."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest

from imagewatchd import colours
from imagewatchd.act import Actor
from imagewatchd.commands import IMAGES
from imagewatchd.config import parse
from imagewatchd.decoding.inline import InlineDecoder
from imagewatchd.errors import FingerprintError
from imagewatchd.match import Matcher
from imagewatchd.models import FileStat, Fingerprint, ListKind, Role, SettledFile, VerdictKind
from imagewatchd.pipeline import Pipeline
from imagewatchd.rows import NewEntry
from imagewatchd.scan import Scanner
from imagewatchd.store import Location, Store, postgres_schema
from tests import test_colours
from tests.conftest import OpenStore, Run, database_at_version
from tests.daemon_harness import Daemon, iw
from tests.test_colours import THRESHOLDS, artwork, fingerprint, hue_turned


def test_a_stored_fingerprint_keeps_its_colours_and_says_when_it_has_none(
    new_store: OpenStore,
) -> None:
    blue = fingerprint(hue_turned(artwork(5)), "JPEG", quality=90)
    assert blue.colours is not None and len(blue.colours) == colours.SIZE
    grey = fingerprint(artwork(5).convert("L"))
    assert grey.colours == b""  # computed: a greyscale file has none
    unknown = Fingerprint("c" * 64, 1, 2, 10, 10, "PNG", False)
    assert unknown.colours is None  # never computed
    stat = FileStat(1, 2, 3, 4)
    with new_store() as store:
        for name, fp in (("blue", blue), ("grey", grey), ("unknown", unknown)):
            store.save_file(f"/up/{name}.jpg", stat, Role.INCOMING, fp, 1.0)
        found = {n: store.get_file(f"/up/{n}.jpg") for n in ("blue", "grey", "unknown")}
        stored = {n: r.fingerprint() for n, r in found.items() if r is not None}
        assert {n: fp.colours for n, fp in stored.items() if fp is not None} == {
            "blue": blue.colours, "grey": b"", "unknown": None}  # fmt: skip
        store.save_file_error("/up/blue.jpg", stat, Role.INCOMING, "truncated", 2.0)
        store.save_file("/up/blue.jpg", stat, Role.INCOMING, unknown, 3.0)
        again = store.get_file("/up/blue.jpg")
        assert again is not None and again.colours is None
        assert store.check(thorough=True) == []


def test_a_version_15_database_gains_file_colours_as_not_computed(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    db = database_at_version(path, 15)
    db.execute(
        "INSERT INTO files (path, device, inode, size, mtime_ns, role, sha256, dhash, phash,"
        " width, height, format, flat, canon_version, first_seen, last_seen) VALUES"
        " (X'2F612E6A7067', 1, 2, 3, 4, 'incoming', ?, 5, 6, 10, 10, 'JPEG', 0, 1, 1, 1)",
        ("a" * 64,),
    )
    db.close()
    with Store(path) as store:
        assert store.schema_version() >= 16
        row = store.get_file("/a.jpg")
        assert row is not None and row.colours is None
        fp = row.fingerprint()
        assert fp is not None and fp.colours is None
        assert store.check(thorough=True) == []
    raw = sqlite3.connect(path)
    try:
        with pytest.raises(sqlite3.IntegrityError):
            raw.execute("UPDATE files SET colours = X'00' WHERE id = 1")
    finally:
        raw.close()


def test_a_postgresql_database_at_migration_6_gains_file_colours_as_not_computed(
    tmp_path: Path, pg_url: str
) -> None:
    with psycopg.connect(pg_url, autocommit=True) as db:
        db.execute("SELECT set_config('imagewatchd.host', 'h1', false)")
        db.execute("CREATE TABLE migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL,"
                   " applied DOUBLE PRECISION NOT NULL)")  # fmt: skip
        for version, name, sql in postgres_schema.MIGRATIONS[:6]:
            db.execute(sql.encode())
            db.execute("INSERT INTO migrations VALUES (%s, %s, 0)", (version, name))
        db.execute(
            "INSERT INTO files (path, device, inode, size, mtime_ns, role, sha256, dhash, phash,"
            " flat, first_seen, last_seen) VALUES ('/a.jpg', 1, 2, 3, 4, 'incoming', %s, 5, 6,"
            " 0, 1, 1)", ("a" * 64,),
        )  # fmt: skip
    blue = fingerprint(hue_turned(artwork(5)), "JPEG", quality=90)
    with Store(Location(tmp_path / "postgresql", pg_url, "h1")) as store:
        assert store.schema_version() == 7
        row = store.get_file("/a.jpg")
        assert row is not None and row.colours is None
        store.save_file("/b.jpg", FileStat(1, 3, 3, 4), Role.INCOMING, blue, 2.0)
        again = store.get_file("/b.jpg")
        assert again is not None and again.colours == blue.colours
        assert store.check(thorough=True) == []


class CountingDecoder(InlineDecoder):
    """The inline decoder, counting the files it decodes (the edge this test watches)."""

    def __init__(self) -> None:
        super().__init__()
        self.decoded = 0

    def fingerprint(
        self, fd: int, name: object, *, crops: bool = False
    ) -> tuple[FileStat, Fingerprint]:
        self.decoded += 1
        return super().fingerprint(fd, name, crops=crops)


def _ignoring_list(store: Store) -> int:
    """A list that ignores recoloured copies, holding the warm poster (artwork 9)."""
    fp = fingerprint(artwork(9))
    list_id = store.create_list("posters", ListKind.BLOCK, "", 1.0)
    store.set_list_recoloured(list_id, "ignore")
    entry = NewEntry(fp.sha256, fp.dhash, fp.phash, pdq=fp.pdq, pdq_quality=fp.pdq_quality,
                     colours=fp.colours or b"")  # fmt: skip
    (added,), _ = store.add_entries(list_id, [entry], 1.0)
    return added


def test_a_stored_upload_matched_again_is_refused_as_recoloured_and_keeps_its_colours(
    tmp_path: Path,
) -> None:
    """A recheck (``scan --act``) of a stored upload decodes it afresh (its regions and other
    orientations count as a new upload's: tests/test_regions.py) and is refused as recoloured;
    a row stored before colours were kept gains them."""
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    blue = uploads / "poster-blue.jpg"
    hue_turned(artwork(9)).save(blue, quality=90)
    config = parse({"quarantine_dir": str(tmp_path / "q"), "watches": [
        {"path": str(uploads), "role": "incoming", "on_known": "quarantine",
         "orientations": "none"}]}, "test")  # fmt: skip
    settled = SettledFile(str(blue), 0, FileStat.of(blue.stat()))
    decoder = CountingDecoder()
    with Store(tmp_path / "t.db") as store:
        matcher = Matcher.load(store, config.matching.thresholds)
        actor = Actor(store, config, tmp_path / "q")
        pipeline = Pipeline(store, matcher, actor, config, decoder)
        pipeline.process(settled)  # stored while no list ignored recoloured copies
        assert decoder.decoded == 1
        stored = store.get_file(str(blue))
        assert stored is not None and stored.colours and len(stored.colours) == colours.SIZE
        _ignoring_list(store)
        matcher.refresh_entries()
        outcome = pipeline.process(settled, recheck=True)
        assert (outcome.verdict, outcome.action) == (VerdictKind.CLEAN, "none"), outcome
        assert decoder.decoded == 2, "decoded afresh"
        assert blue.exists()
    with sqlite3.connect(tmp_path / "t.db") as raw:  # as a version-15 store left it
        raw.execute("UPDATE files SET colours = NULL")
    raw.close()
    with Store(tmp_path / "t.db") as store:
        matcher = Matcher.load(store, config.matching.thresholds)
        pipeline = Pipeline(store, matcher, Actor(store, config, tmp_path / "q"), config, decoder)
        assert pipeline.process(settled, recheck=True).verdict is VerdictKind.CLEAN
        assert decoder.decoded == 3
        again = store.get_file(str(blue))
        assert again is not None and again.colours


def test_an_entry_keeps_its_colours_in_its_own_transaction(new_store: OpenStore) -> None:
    with new_store() as store:
        entry = _ignoring_list(store)
        assert store.ignored_colours([entry]) == {entry: fingerprint(artwork(9)).colours}
        turned = fingerprint(hue_turned(artwork(9)), "JPEG", quality=90)
        verdict = Matcher.load(store, THRESHOLDS).match(turned)
        assert verdict.kind is VerdictKind.CLEAN
        (aside,) = verdict.recoloured
        assert (aside.match.list_name, aside.match.entry_id) == ("posters", entry)
        assert aside.moved > colours.NEAR


def _incoming_config(tmp_path: Path, uploads: Path) -> Path:
    config = tmp_path / "config.yaml"
    config.write_text(
        f"quarantine_dir: {tmp_path / 'q'}\nwatches:\n  - path: {uploads}\n    role: incoming\n"
        "    on_known: quarantine\n    orientations: none\n"
    )
    return config


def test_known_add_counts_no_stored_recoloured_copy_for_a_list_that_ignores_them(
    cli: Callable[..., Run], tmp_path: Path
) -> None:
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    artwork(9).save(tmp_path / "poster.png")
    hue_turned(artwork(9)).save(uploads / "poster-blue.jpg", quality=90)
    artwork(9).save(uploads / "poster-copy.jpg", quality=85)
    config = str(_incoming_config(tmp_path, uploads))
    cli("--config", config, "scan", "--act", str(uploads), check=0)  # stored, clean: no lists
    cli("lists", "create", "posters", "--recoloured", "ignore", check=0)
    out = cli("--config", config, "known", "add", "--list", "posters",
              str(tmp_path / "poster.png"), check=0).out  # fmt: skip
    assert "stored incoming files matched: 1;" in out, out  # the faithful copy only
    assert "allow-listed" not in out, out


def test_scan_act_on_a_library_honours_a_list_that_ignores_recoloured_copies(
    cli: Callable[..., Run], tmp_path: Path
) -> None:
    library = tmp_path / "library"
    library.mkdir()
    artwork(9).save(tmp_path / "poster.png")
    blue, copy = library / "poster-blue.jpg", library / "poster-copy.jpg"
    hue_turned(artwork(9)).save(blue, quality=90)
    artwork(9).save(copy, quality=85)
    config = tmp_path / "config.yaml"
    config.write_text(
        f"quarantine_dir: {tmp_path / 'q'}\nwatches:\n  - path: {library}\n    role: library\n"
        "    on_known: quarantine\n"
    )
    cli("--config", str(config), "scan", str(library), check=0)
    cli("lists", "create", "posters", "--recoloured", "ignore", check=0)
    cli("known", "add", "--list", "posters", str(tmp_path / "poster.png"), check=0)
    cli("--config", str(config), "scan", "--act", str(library), check=0)
    assert blue.exists(), "a recoloured copy is not a copy for this list"
    assert not copy.exists()


def test_a_library_file_stored_without_colours_is_decoded_again_for_them(
    cli: Callable[..., Run], tmp_path: Path
) -> None:
    """A library indexed by an earlier version has no colours: while a list ignores
    recoloured copies, a scan reads such files again (once) and stores their colours."""
    library = tmp_path / "library"
    library.mkdir()
    artwork(9).save(tmp_path / "poster.png")
    blue = library / "poster-blue.jpg"
    hue_turned(artwork(9)).save(blue, quality=90)
    config = tmp_path / "config.yaml"
    config.write_text(
        f"quarantine_dir: {tmp_path / 'q'}\nwatches:\n  - path: {library}\n    role: library\n"
        "    on_known: quarantine\n"
    )
    cli("--config", str(config), "scan", str(library), check=0)
    with sqlite3.connect(tmp_path / "state" / "imagewatchd.db") as raw:  # as version 15 left it
        raw.execute("UPDATE files SET colours = NULL")
    raw.close()
    cli("lists", "create", "posters", "--recoloured", "ignore", check=0)
    cli("known", "add", "--list", "posters", str(tmp_path / "poster.png"), check=0)
    out = cli("--config", str(config), "scan", "--act", str(library), check=0).out
    assert blue.exists(), out
    with Store(tmp_path / "state" / "imagewatchd.db") as store:
        row = store.get_file(str(blue))
        assert row is not None and row.colours


def test_check_shows_a_near_match_set_aside_as_recoloured(
    cli: Callable[..., Run], tmp_path: Path
) -> None:
    artwork(9).save(tmp_path / "poster.png")
    blue = tmp_path / "poster-blue.jpg"
    hue_turned(artwork(9)).save(blue, quality=90)
    cli("lists", "create", "posters", "--recoloured", "ignore", check=0)
    cli("known", "add", "--list", "posters", str(tmp_path / "poster.png"), check=0)
    lines = cli("check", str(blue), check=0).out.splitlines()
    assert lines[0] == f"{blue}: clean"
    assert lines[1].startswith("  set aside as a recoloured copy: list posters entry 1 "), lines
    assert "hue distance 0." in lines[1]
    data = json.loads(cli("check", "--json", str(blue), check=0).out)
    assert data["verdict"] == "clean" and data["matches"] == []  # the old keys, as they were
    (aside,) = data["recoloured"]
    assert (aside["list"], aside["entry_id"], aside["source"]) == ("posters", 1, "list")
    assert colours.NEAR < aside["hue_distance"] <= 0.5
    copy = tmp_path / "poster.jpg"
    artwork(9).save(copy, quality=85)
    assert json.loads(cli("check", "--json", str(copy), check=1).out)["recoloured"] == []


uploads_daemon = test_colours.uploads_daemon  # a running daemon, a list "banned" (fixture)


def test_the_verdict_line_names_the_list_and_the_hue_distance_of_a_set_aside_match(
    uploads_daemon: Daemon, tmp_path: Path
) -> None:
    changed = iw(uploads_daemon.db, "lists", "set", "banned", "--recoloured", "ignore")
    assert changed.returncode == 0, changed.stderr  # the daemon follows at its next match
    blue = tmp_path / "uploads" / "recoloured.jpg"
    hue_turned(artwork(11)).save(blue, quality=90)
    line = uploads_daemon.processed(blue)
    assert f"{blue}: clean recoloured list=banned entry=1 hue=0." in line, line
    assert line.endswith("-> none"), line
    assert blue.exists()


class _Failing(InlineDecoder):
    """A decoder that times out while ``failing`` (a busy machine, a slow disk)."""

    failing = False

    def fingerprint(self, fd: int, name: object, **options: bool) -> tuple[FileStat, Fingerprint]:
        if self.failing:
            raise FingerprintError(str(name), "decode timed out")
        return super().fingerprint(fd, name, **options)


def test_a_failed_read_for_colours_keeps_the_stored_fingerprint(tmp_path: Path) -> None:
    """A file read again only for its colours that cannot be read now keeps what is stored: it
    stays in the library (its duplicates still found), and the next scan tries again."""
    library = tmp_path / "library"
    library.mkdir()
    photo_path = library / "poster.jpg"
    artwork(9).save(photo_path, quality=90)
    decoder = _Failing()
    with Store(tmp_path / "t.db") as store:
        Scanner(store, Matcher.load(store, THRESHOLDS), IMAGES, decoder).scan([library])
        kept = store.get_file(str(photo_path))
    with sqlite3.connect(tmp_path / "t.db") as raw:  # as an earlier version left it
        raw.execute("UPDATE files SET colours = NULL")
    raw.close()
    with Store(tmp_path / "t.db") as store:
        store.set_list_recoloured(store.create_list("p", ListKind.BLOCK, "", 1.0), "ignore")
        matcher = Matcher.load(store, THRESHOLDS)
        decoder.failing = True
        failed = Scanner(store, matcher, IMAGES, decoder).scan([library])
        row = store.get_file(str(photo_path))
        assert failed.errors == 1 and row is not None and kept is not None
        assert (row.sha256, row.dhash, row.error, row.colours) == (kept.sha256, kept.dhash, None,
                                                                   None)  # fmt: skip
        assert [r.id for r in store.library_files()] == [row.id]
        decoder.failing = False
        Scanner(store, matcher, IMAGES, decoder).scan([library])
        again = store.get_file(str(photo_path))
        assert again is not None and again.colours
