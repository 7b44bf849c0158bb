"""Every query on the per-file path searches an index: none scans a table that grows with use.

The SQL is what the code really runs, traced with ``set_trace_callback`` (statements come
expanded, with their values) while one file after another goes through the pipeline, is
renamed, forgotten, restored and undone; each is then planned with ``EXPLAIN QUERY PLAN``.
A regression (a query that would read the whole ``files`` table for one file) fails here,
without any timing.
"""

from __future__ import annotations

import hashlib
import os
import re
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from imagewatchd import journal
from imagewatchd.act import Actor
from imagewatchd.config import Config, parse
from imagewatchd.decoding.inline import InlineDecoder
from imagewatchd.match import Matcher
from imagewatchd.models import FileStat, Fingerprint, ListKind, Role, SettledFile
from imagewatchd.peers import Peers
from imagewatchd.pipeline import Pipeline
from imagewatchd.rows import NewEntry, RetryRow
from imagewatchd.store import Store
from tests.conftest import photo

# Inserting a journal row plans a look-up of the rows that reverse it (actions.reverses has no
# index); SQLite runs that look-up only when a parent row is deleted or renumbered, which the
# journal never does (an insert costs the same at 2M rows as at none).
# The two counters live reloads compare are read whole (a table of two rows).
ALLOWED = {
    ("INSERT INTO actions", "SCAN actions"),
    ("SELECT name, value FROM counters", "SCAN counters"),
}
SETUP = ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE", "PRAGMA", "--")


@contextmanager
def traced(store: Store) -> Iterator[list[str]]:
    statements: list[str] = []
    db = store._db
    assert isinstance(db, sqlite3.Connection)  # the plans are SQLite's
    db.set_trace_callback(statements.append)
    try:
        yield statements
    finally:
        db.set_trace_callback(None)


def scans(store: Store, statements: list[str]) -> list[tuple[str, str]]:
    """(statement, plan) of every statement whose plan scans a table."""
    found = []
    for statement in statements:
        if statement.lstrip().upper().startswith(SETUP):
            continue
        plan = [row[3] for row in store._db.execute("EXPLAIN QUERY PLAN " + statement)]
        for step in plan:
            if re.match(r"SCAN (?!CONSTANT ROW)", step) and not any(
                statement.lstrip().startswith(head) and step == scan for head, scan in ALLOWED
            ):
                found.append((" ".join(statement.split())[:160], " | ".join(plan)))
    return found


def _config(tmp_path: Path) -> Config:
    watches = [
        {"path": str(tmp_path / "in"), "role": "incoming", "on_known": "quarantine",
         "on_duplicate": "move", "move_to": str(tmp_path / "dupes")},
        {"path": str(tmp_path / "lib"), "role": "library"},
    ]  # fmt: skip
    return parse({"watches": watches}, "test")


def _settled(path: Path, watch: int) -> SettledFile:
    return SettledFile(str(path), watch, FileStat.of(path.stat()))


def _fill(store: Store, tmp_path: Path) -> None:
    """Enough rows in every table that the planner has something to choose between."""
    for n in range(200):
        fake = tmp_path / "lib" / "old" / f"{n}.jpg"
        stat = FileStat(device=1, inode=10_000 + n, size=n, mtime_ns=n)
        fp = Fingerprint(f"{n:064x}", n * 7919, n * 104729, 10, 10, "JPEG", False)
        store.save_file(str(fake), stat, Role.LIBRARY, fp, 1.0)
    list_id = store.create_list("banned", ListKind.BLOCK, "", 1.0)
    store.add_entries(list_id, [NewEntry(f"{n:064x}", n, n + 1) for n in range(200)], 1.0)


def test_the_per_file_queries_search_indexes(tmp_path: Path) -> None:
    config = _config(tmp_path)
    incoming, library = tmp_path / "in", tmp_path / "lib"
    incoming.mkdir()
    library.mkdir()
    photo(1, (320, 240)).save(library / "a.jpg")
    photo(3, (320, 240)).save(tmp_path / "banned.jpg")
    with Store(tmp_path / "t.db") as store:
        _fill(store, tmp_path)
        decoder = InlineDecoder()
        matcher = Matcher.load(store, config.matching.thresholds)
        actor = Actor(store, config, tmp_path / "quarantine")
        pipeline = Pipeline(store, matcher, actor, config, decoder)
        sha256 = hashlib.sha256((tmp_path / "banned.jpg").read_bytes()).hexdigest()
        list_id = store.create_list("local", ListKind.BLOCK, "", 1.0)
        store.add_entries(list_id, [NewEntry(sha256, None, None)], 1.0)
        with traced(store) as statements:
            _one_file_after_another(store, pipeline, matcher, actor, decoder, tmp_path)
        assert len(statements) > 40
        assert scans(store, statements) == []


def _one_file_after_another(
    store: Store, pipeline: Pipeline, matcher: Matcher, actor: Actor,
    decoder: InlineDecoder, tmp_path: Path,
) -> None:  # fmt: skip
    incoming, library = tmp_path / "in", tmp_path / "lib"
    pipeline.process(_settled(library / "a.jpg", 1))  # a library file, indexed
    photo(1, (300, 200)).save(incoming / "dupe.jpg")
    photo(2, (320, 240)).save(incoming / "clean.jpg")
    (incoming / "known.jpg").write_bytes((tmp_path / "banned.jpg").read_bytes())
    (incoming / "broken.jpg").write_bytes(b"not a picture")
    outcomes = [
        pipeline.process(_settled(incoming / name, 0))
        for name in ("dupe.jpg", "clean.jpg", "known.jpg", "broken.jpg")
    ]
    assert [o.verdict.value if o.verdict else None for o in outcomes][:3] == [
        "duplicate", "clean", "known",
    ]  # fmt: skip
    pipeline.process(_settled(incoming / "clean.jpg", 0))  # unchanged: skipped
    os.rename(incoming / "clean.jpg", incoming / "renamed.jpg")  # found again by inode
    pipeline.process(_settled(incoming / "renamed.jpg", 0))
    store.rename_paths(str(incoming / "renamed.jpg"), str(incoming / "again.jpg"))
    store.forget_files([i for i, _ in store.files_under(str(incoming / "gone"))])
    store.forget_path(str(incoming / "again.jpg"))
    matcher.refresh_entries()
    quarantined = [a for a in store.actions(kind="quarantine") if a.state == "done"]
    store.save_retries([RetryRow("act", str(incoming / "x.jpg"), 1, 5.0, "busy")], [])
    store.save_retries([], [("act", str(incoming / "x.jpg"))])
    journal.reverse(
        store, actor, quarantined[0].id, force=True, role=Role.INCOMING, decoder=decoder
    )
    assert store.exemption(str(incoming / "known.jpg"), quarantined[0].sha256) is not None
    pipeline.process(_settled(incoming / "known.jpg", 0), recheck=True)  # exempted: left
    moved = [a for a in store.actions(kind="move") if a.state == "done"]
    journal.reverse(store, actor, moved[0].id, force=True, role=Role.INCOMING, decoder=decoder)


def test_the_scanned_roots_files_are_read_by_a_path_range(tmp_path: Path) -> None:
    """``scan``'s grouping reads the files under the scanned roots, not the whole library."""
    with Store(tmp_path / "t.db") as store:
        _fill(store, tmp_path)
        with traced(store) as statements:
            ids, _ = store.library_fingerprints_under([str(tmp_path / "lib" / "old")])
        assert len(ids) == 200
        assert [s for s in statements if "FROM files" in s]
        assert scans(store, statements) == []


def test_a_list_reload_reads_the_new_entries_regions_by_index(tmp_path: Path) -> None:
    """Entries' centre crops (migration 11) are read from the last loaded entry on."""
    with Store(tmp_path / "t.db") as store:
        _fill(store, tmp_path)
        list_id = store.create_list("cropped", ListKind.BLOCK, "", 1.0)
        crops = [(f"crop{n}", 7919 * n, 104729 * n) for n in (2, 5, 10)]
        store.add_entries(list_id, [NewEntry(f"{n:064x}", n, n, regions=tuple(crops))
                                    for n in range(300, 500)], 1.0)  # fmt: skip
        matcher = Matcher.load(store, parse({}, "test").matching.thresholds)
        store.add_entries(list_id, [NewEntry(None, 1, 2, regions=tuple(crops))], 2.0)
        with traced(store) as statements:
            assert matcher.refresh_entries()
        assert any("FROM entry_regions" in s for s in statements)
        assert scans(store, statements) == []
        assert len(matcher.indexes.regions) == 3 * 201


def test_an_inbox_arrivals_peers_are_found_and_loaded_by_index(tmp_path: Path) -> None:
    """An inbox's copies waiting (peers.py): matched per file and loaded by path range."""
    inbox, library = tmp_path / "in", tmp_path / "lib"
    inbox.mkdir()
    library.mkdir()
    watches = [
        {"path": str(inbox), "role": "incoming", "library": str(library)},
        {"path": str(library), "role": "library"},
    ]
    config = parse({"watches": watches}, "test")
    photo(1, (320, 240)).save(inbox / "first.jpg")
    photo(1, (300, 200)).save(inbox / "second.jpg")
    with Store(tmp_path / "t.db") as store:
        _fill(store, tmp_path)
        matcher = Matcher.load(store, config.matching.thresholds)
        actor = Actor(store, config, tmp_path / "quarantine")
        pipeline = Pipeline(store, matcher, actor, config, InlineDecoder())
        with traced(store) as statements:
            pipeline.process(_settled(inbox / "first.jpg", 0))
            second = pipeline.process(_settled(inbox / "second.jpg", 0))
            loaded = Peers.load(store, config)
        assert second.verdict is not None and second.verdict.value == "duplicate"
        assert len(loaded) == 2
        # the queries on files (the ranking's decisions_among scans its index: not this test's)
        on_files = [s for s in statements if "FROM files" in s]
        assert len(on_files) > 5 and scans(store, on_files) == []
