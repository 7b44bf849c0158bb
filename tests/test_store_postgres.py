"""The PostgreSQL store: one database, many hosts; its migrations; bulk import by COPY; the
``db migrate`` and ``db check`` commands; the test cluster's own refusal to skip."""

from __future__ import annotations

import glob
import socket
import threading
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest

from imagewatchd import config, paths
from imagewatchd.errors import ConfigError, StoreError
from imagewatchd.models import FileStat, Fingerprint, ListKind, Role
from imagewatchd.rows import NewAction, NewEntry, RetryRow
from imagewatchd.store import Location, Store
from imagewatchd.store.postgres_schema import MIGRATIONS
from imagewatchd.store.wakeups import BankWakeups
from tests import pgcluster
from tests.conftest import Run

STAT = FileStat(device=1, inode=2, size=3, mtime_ns=4)
FP = Fingerprint("ab" * 32, 1, 2, 10, 10, "PNG", False)


def at(url: str, host: str, tmp_path: Path) -> Location:
    return Location(tmp_path / host / "postgresql", url, host)


def quarantine(path: str) -> NewAction:
    return NewAction(
        kind="quarantine", src_root="/up", src_rel=path, dst_root="/q", dst_rel=path,
        tmp_name=None, sha256="ab" * 32, stat=STAT, atime_ns=0, uid=0, gid=0, mode=0o644,
        verdict="known", evidence="{}", rule="watches[0].on_known",
    )  # fmt: skip


def test_hosts_share_the_bank_and_keep_their_own_files_and_journal(
    pg_url: str, tmp_path: Path
) -> None:
    with Store(at(pg_url, "a", tmp_path)) as a, Store(at(pg_url, "b", tmp_path)) as b:
        list_id = a.create_list("banned", ListKind.BLOCK, "", now=1.0)
        (entry,), _ = a.add_entries(list_id, [NewEntry("c" * 64, 5, 6)], now=1.0)
        assert [e.id for e in b.entries("banned")] == [entry]  # shared
        b.record_hits([entry], now=2.0)
        assert a.entries(ids=[entry])[0].hits == 1
        a.save_file("/up/x.png", STAT, Role.LIBRARY, FP, now=1.0)
        b.save_file("/up/x.png", STAT, Role.INCOMING, FP, now=1.0)  # the same path on b
        a_row, b_row = a.get_file("/up/x.png"), b.get_file("/up/x.png")
        assert a_row is not None and b_row is not None
        assert (a_row.role, b_row.role) == (Role.LIBRARY, Role.INCOMING)
        assert a.count_files() == {"library": 1} and b.count_files() == {"incoming": 1}
        assert b.library_hashes()[0].tolist() == []
        action = a.intend(quarantine("x.png"), now=1.0)
        assert [r.id for r in a.actions()] == [action] and b.actions() == []
        a.save_retries([RetryRow("act", "/up/x.png", 1, 9.0, "busy")], [])
        assert b.retries() == [] and len(a.retries()) == 1
        assert a.library_change_state()[1] == 1 and b.library_change_state()[1] == 0
        assert a.library_change_state()[0] != b.library_change_state()[0]  # snapshot keys
    with psycopg.connect(pg_url) as db:
        hosts = db.execute("SELECT host, role FROM host_files ORDER BY host").fetchall()
    assert hosts == [("a", "library"), ("b", "incoming")]


def test_migrations_apply_once_and_a_newer_database_is_refused(pg_url: str, tmp_path: Path) -> None:
    where = at(pg_url, "a", tmp_path)
    for _ in range(2):
        with Store(where) as store:
            assert store.schema_version() == MIGRATIONS[-1][0]
            assert store.check(thorough=True) == []
    with psycopg.connect(pg_url) as db:
        assert db.execute("SELECT COUNT(*) FROM migrations").fetchone() == (len(MIGRATIONS),)
        db.execute("INSERT INTO migrations VALUES (99, 'future', 0)")
    with pytest.raises(StoreError, match="newer imagewatchd"):
        Store(where)


def test_a_server_that_does_not_answer_is_one_clear_error(tmp_path: Path) -> None:
    url = f"postgresql://nobody@/none?host={tmp_path}"
    with pytest.raises(StoreError, match=r"^postgresql://nobody@/none.*cannot open the database"):
        Store(at(url, "a", tmp_path))


def test_bulk_import_skips_what_the_list_holds_and_keeps_the_crops(
    pg_url: str, tmp_path: Path
) -> None:
    crops = (("crop5", 7, 8),)
    with Store(at(pg_url, "a", tmp_path)) as store:
        list_id = store.create_list("banned", ListKind.BLOCK, "", now=1.0)
        first, skipped = store.add_entries(
            list_id, [NewEntry("a" * 64, 1, 2, regions=crops), NewEntry(None, 3, 4),
                      NewEntry("a" * 64, 1, 2)], now=1.0,
        )  # fmt: skip
        assert (len(first), skipped) == (2, 1) and first == sorted(first)
        again, skipped = store.add_entries(
            list_id, [NewEntry(None, 3, 4), NewEntry("b" * 64, None, None)], now=2.0
        )
        assert (len(again), skipped) == (1, 1) and again[0] > first[-1]
        keys, dhashes, _ = store.entry_region_hashes_after(0)
        assert (len(keys), dhashes.tolist()) == (1, [7])
        assert store.entry_counters()[0] == 3


def test_a_bulk_import_writes_every_entry_in_one_block_of_ids(pg_url: str, tmp_path: Path) -> None:
    """The import by COPY (its speed is a benchmark's: bench/known_import.py): every entry
    written, ids one contiguous block, the hashes read back as they went in."""
    entries = [NewEntry(None, n * 7919 + 1, n * 104729 + 3) for n in range(50_000)]
    with Store(at(pg_url, "a", tmp_path)) as store:
        list_id = store.create_list("big", ListKind.BLOCK, "", now=1.0)
        added, skipped = store.add_entries(list_id, entries, now=1.0)
        assert (len(added), skipped) == (50_000, 0)
        assert list(added) == list(range(added[0], added[0] + 50_000))
        ids, dhashes, _ = store.near_entry_hashes_after(0)
        assert len(ids) == 50_000 and int(dhashes[-1]) == 49_999 * 7919 + 1


def test_db_migrate_and_db_check_on_both_engines(
    cli: Callable[..., Run], pg_url: str, tmp_path: Path
) -> None:
    migrated = cli("db", "migrate", check=0)
    assert "imagewatchd.db: schema version" in migrated.out
    assert cli("db", "check", check=0).out.endswith(": ok\n")
    migrated = cli("--db", pg_url, "db", "migrate", check=0)
    assert migrated.out.startswith(f"{pg_url}: schema version {MIGRATIONS[-1][0]}")
    assert cli("--db", pg_url, "db", "check", check=0).out == f"{pg_url}: ok\n"
    assert f"database: {pg_url}\n" in cli("--db", pg_url, "status", check=0).out
    with psycopg.connect(pg_url) as db:
        db.execute("DROP VIEW retries")
    damaged = cli("--db", pg_url, "db", "check", check=1)
    assert "table retries is missing" in damaged.out


def test_db_check_of_an_empty_database_reports_and_creates_nothing(
    cli: Callable[..., Run], pg_url: str
) -> None:
    empty = cli("--db", pg_url, "db", "check", check=1)
    assert f"{pg_url}: no imagewatchd tables: an empty database" in empty.out
    with psycopg.connect(pg_url) as db:
        tables = db.execute(
            "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = 'public'"
        ).fetchone()
    assert tables == (0,)


def test_without_the_server_binaries_the_tests_fail_saying_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(glob, "glob", lambda pattern: [])
    with pytest.raises(pgcluster.MissingServer, match="apt-get install -y postgresql"):
        pgcluster.Cluster()


def test_a_url_in_the_config_flag_or_environment_names_a_postgresql_store() -> None:
    url = "postgresql://iw:secret@db.example.org:5433/bank?sslmode=require"
    parsed = config.parse({"database": url, "host": "upload-7"}, "test")
    assert (parsed.database, parsed.host) == (url, "upload-7")
    where = paths.database(None, parsed.database, parsed.host, {"STATE_DIRECTORY": "/var/lib/iw"})
    assert where == Location(Path("/var/lib/iw/postgresql"), url, "upload-7")
    assert str(where) == "postgresql://iw:***@db.example.org:5433/bank?sslmode=require"
    assert paths.database(url, Path("/cfg/db"), "", {}).host == socket.gethostname()
    env = {"IMAGEWATCHD_DB": "/env/db"}
    assert paths.database(None, url, "", env) == Location(Path("/env/db"))  # the variable wins
    with pytest.raises(ConfigError, match="host: expected a host name"):
        config.parse({"host": 7}, "test")


def test_once_migrated_a_role_that_cannot_create_tables_runs_the_store(
    pg_url: str, tmp_path: Path
) -> None:
    """As docs/FLEET.md says: ``db migrate`` as the owner, the daemons as a plain role."""
    Store(at(pg_url, "owner", tmp_path)).close()
    with psycopg.connect(pg_url, autocommit=True) as db:
        db.execute("CREATE ROLE daemon LOGIN")
        db.execute("GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO daemon")
        db.execute("GRANT USAGE, UPDATE ON ALL SEQUENCES IN SCHEMA public TO daemon")
        db.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
    plain = pg_url.replace("postgresql://imagewatchd@", "postgresql://daemon@")
    with Store(at(plain, "upload-1", tmp_path)) as store:
        store.save_file("/up/x.png", STAT, Role.INCOMING, FP, now=1.0)
        list_id = store.create_list("banned", ListKind.BLOCK, "", now=1.0)
        assert store.add_entries(list_id, [NewEntry("a" * 64, None, None)], now=1.0)[1] == 0
        assert store.check(thorough=False) == []


def test_a_change_to_the_bank_wakes_the_other_hosts(pg_url: str, tmp_path: Path) -> None:
    woken = threading.Event()
    wakeups = BankWakeups(at(pg_url, "b", tmp_path), woken.set)
    with Store(at(pg_url, "a", tmp_path)) as store:
        wakeups.start_once()
        try:
            assert wakeups.listening.wait(10)
            list_id = store.create_list("banned", ListKind.BLOCK, "", now=1.0)
            (entry,), _ = store.add_entries(list_id, [NewEntry("a" * 64, None, None)], now=1.0)
            assert woken.wait(10)
            woken.clear()
            store.set_entries_enabled([entry], False)
            assert woken.wait(10)
        finally:
            wakeups.stop()
    on_sqlite = BankWakeups(tmp_path / "t.db", woken.set)
    on_sqlite.start_once()  # no other host to hear from: nothing listens
    assert not on_sqlite.listening.is_set()
    on_sqlite.stop()


def test_a_label_holding_a_nul_is_imported(pg_url: str, tmp_path: Path) -> None:
    """PostgreSQL's text cannot hold NUL (SQLite's can): it becomes U+FFFD, not an error."""
    with Store(at(pg_url, "a", tmp_path)) as store:
        list_id = store.create_list("banned", ListKind.BLOCK, "", now=1.0)
        store.add_entries(list_id, [NewEntry("a" * 64, None, None, label="a\0b")], now=1.0)
        assert [e.label for e in store.entries("banned")] == ["a\ufffdb"]
