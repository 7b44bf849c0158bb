"""The SQLite store: all SQL is run here (the schema is in schema.py, the row types in rows.py).

One file in WAL mode; versioned migrations, each applied in the same transaction as its record;
every write runs inside ``transaction()``. Hashes are unsigned 64-bit values kept in SQLite's
signed INTEGER by two's complement. Paths are BLOBs of the name's exact bytes (``os.fsencode``),
compared and range-searched as bytes; free text (errors) is stored as ``names.shown`` shows it.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import astuple
from itertools import chain
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from imagewatchd import store_check
from imagewatchd.decisions_store import DecisionQueries
from imagewatchd.errors import DatabaseDamaged, StoreError
from imagewatchd.models import CANON_VERSION, FileStat, Fingerprint, ListKind, Role
from imagewatchd.names import shown
from imagewatchd.rows import (
    ACTION_COLUMNS,
    ENTRY_COLUMNS,
    FILE_COLUMNS,
    REGIONS,
    ActionRow,
    BatchRow,
    EntryRow,
    FileRow,
    ListRow,
    NewAction,
    NewEntry,
    RetryRow,
    action_row,
    entry_row,
    file_row,
    path_of,
    pdq_blob,
    to_signed,
)  # fmt: skip
from imagewatchd.schema import MIGRATIONS

IMPORT_CHUNK = 5000
BUSY_TIMEOUT = 30.0  # seconds a statement waits for another connection's lock
WAL_SIZE_LIMIT = 4 << 20  # bytes the WAL file keeps after a checkpoint; the rest is truncated
WAL_AUTOCHECKPOINT = 1000  # pages: each commit past this checkpoints as far as readers allow
CHECKPOINT_WAIT_MS = 500  # a checkpoint that must wait for readers holds writers this long
RETRO_LAST = "retro_last_entry"  # counters rows: where the daemon's retroactive bans resume
RETRO_OFF = "retro_disabled "  # + an entry id: an entry disabled then


def _blob(path: str) -> bytes:
    """A path as stored: the exact bytes of the name."""
    return os.fsencode(path)


def _blob_or_none(path: str | None) -> bytes | None:
    return None if path is None else _blob(path)


def _text_or_none(text: str | None) -> str | None:
    """Free text that may hold a name (an error): valid UTF-8 for a TEXT column, one line."""
    return None if text is None else shown(text)


def _below(root: str) -> tuple[bytes, bytes]:
    """The byte range [low, high) of every path below the directory ``root``.

    As a range on the BLOB column, a query searches the unique index on path.
    """
    low = os.fsencode(root).rstrip(b"/") + b"/"
    return low, low[:-1] + bytes([low[-1] + 1])  # low ends with "/", so +1 never overflows


def _statements(script: str) -> Iterator[str]:
    """Split a script into statements; triggers hold semicolons of their own."""
    pending = ""
    for piece in script.split(";"):
        pending += piece + ";"
        if sqlite3.complete_statement(pending):
            if pending.strip(" \n;"):
                yield pending
            pending = ""


def _id_hash_columns(
    values: NDArray[np.int64],
) -> tuple[NDArray[np.int64], NDArray[np.uint64], NDArray[np.uint64]]:
    """(ids, dHashes, pHashes) from (id, dhash, phash) rows poured into one array."""
    table = values.reshape(-1, 3)
    ids = np.ascontiguousarray(table[:, 0])
    dhashes: NDArray[np.uint64] = np.ascontiguousarray(table[:, 1]).view(np.uint64)
    phashes: NDArray[np.uint64] = np.ascontiguousarray(table[:, 2]).view(np.uint64)
    return ids, dhashes, phashes


class Store(DecisionQueries):
    """The database. Not shared between threads: each thread opens its own ``Store``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._depth = 0
        self._lock = threading.RLock()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(path, isolation_level=None, timeout=BUSY_TIMEOUT)
            self._db.execute("PRAGMA journal_mode = WAL")
            self._db.execute("PRAGMA synchronous = NORMAL")
            self._db.execute("PRAGMA foreign_keys = ON")
            self._db.execute(f"PRAGMA journal_size_limit = {WAL_SIZE_LIMIT}")
            self._db.execute(f"PRAGMA wal_autocheckpoint = {WAL_AUTOCHECKPOINT}")
            self._verify(before_migrating=True)
            self._migrate()
            self._verify(before_migrating=False)
        except (sqlite3.Error, OSError, UnicodeDecodeError, StoreError) as exc:
            if hasattr(self, "_db"):  # no connection outlives a refusal
                self._db.close()
            if isinstance(exc, StoreError):
                raise
            detail = store_check.damage(exc)
            if detail is not None:
                raise DatabaseDamaged(path, detail) from exc
            raise StoreError(f"{path}: cannot open the database: {exc}") from exc

    def _verify(self, *, before_migrating: bool) -> None:
        """What every open can afford: the migrations table, then the tables' shape."""
        version, problems = store_check.migration_problems(self._db)
        if not problems and not before_migrating:
            problems = store_check.shape_problems(self._db, version)
        if problems:
            more = f" and {len(problems) - 1} more problem(s)" if len(problems) > 1 else ""
            raise DatabaseDamaged(self.path, problems[0] + more)

    def check(self, *, thorough: bool) -> list[str]:
        """The database's problems, one line each (see ``store_check.check``); [] when sound."""
        with self._lock:
            return store_check.check(self._db, thorough)

    def startup_check(self) -> list[str]:
        """What the daemon checks before it acts (see ``store_check.startup_check``)."""
        with self._lock:
            return store_check.startup_check(self._db)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def durable(self) -> Iterator[sqlite3.Connection]:
        """A transaction that survives power loss once committed (the WAL is fsynced).

        WAL with ``synchronous = NORMAL`` may lose the last commits on power loss; that is fine
        for fingerprints, not for a journal entry written before a file is moved.
        """
        with self._lock:
            self._db.execute("PRAGMA synchronous = FULL")
            try:
                with self.transaction() as db:
                    yield db
            finally:
                self._db.execute("PRAGMA synchronous = NORMAL")

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE at the outside, a savepoint inside; rolled back on any exception."""
        with self._lock:
            outer = self._depth == 0
            name = f"sp{self._depth}"
            self._db.execute("BEGIN IMMEDIATE" if outer else f"SAVEPOINT {name}")
            self._depth += 1
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK" if outer else f"ROLLBACK TO {name}")
                if not outer:
                    self._db.execute(f"RELEASE {name}")
                raise
            else:
                self._db.execute("COMMIT" if outer else f"RELEASE {name}")
            finally:
                self._depth -= 1

    def _migrate(self) -> None:
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS migrations "
            "(version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied REAL NOT NULL)"
        )
        done = {row[0] for row in self._db.execute("SELECT version FROM migrations")}
        known = {version for version, _, _ in MIGRATIONS}
        if done - known:
            raise StoreError(
                f"{self.path}: the database is from a newer imagewatchd "
                f"(migration {max(done)}); upgrade imagewatchd"
            )
        for version, name, sql in MIGRATIONS:
            if version in done:
                continue
            with self.transaction() as db:
                for statement in _statements(sql):
                    db.execute(statement)
                db.execute(
                    "INSERT INTO migrations (version, name, applied) VALUES (?, ?, ?)",
                    (version, name, time.time()),
                )

    def schema_version(self) -> int:
        row = self._db.execute("SELECT MAX(version) FROM migrations").fetchone()
        return int(row[0] or 0)

    # -- files ---------------------------------------------------------------------------

    def get_file(self, path: str) -> FileRow | None:
        query = f"SELECT {FILE_COLUMNS} FROM files WHERE path = ?"
        row = self._db.execute(query, (_blob(path),))
        found = row.fetchone()
        return file_row(found) if found else None

    def files_by_id(self, ids: Iterable[int]) -> dict[int, FileRow]:
        wanted = list(ids)
        result: dict[int, FileRow] = {}
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            marks = ",".join("?" * len(chunk))
            query = f"SELECT {FILE_COLUMNS} FROM files WHERE id IN ({marks})"
            result.update((row[0], file_row(row)) for row in self._db.execute(query, chunk))
        return result

    def files_by_sha256(self, sha256: str, role: Role) -> list[FileRow]:
        query = f"SELECT {FILE_COLUMNS} FROM files WHERE sha256 = ? AND role = ? ORDER BY id"
        return [file_row(row) for row in self._db.execute(query, (sha256, role.value))]

    def library_copies(self) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        """(ids, group numbers) of the library files whose sha256 another library file shares,
        by one grouped query: a group's ids side by side, groups numbered from 0."""
        query = (
            "SELECT group_concat(id) FROM (SELECT id, sha256 FROM files"
            " WHERE role = 'library' AND sha256 IS NOT NULL ORDER BY sha256, id)"
            " GROUP BY sha256 HAVING COUNT(*) > 1"
        )
        with self._lock:
            groups = [row[0] for row in self._db.execute(query)]
        ids = np.array(",".join(groups).split(",") if groups else [], np.int64)
        sizes = np.array([group.count(",") + 1 for group in groups], np.int64)
        return ids, np.repeat(np.arange(len(groups), dtype=np.int64), sizes)

    def library_files(self) -> Iterator[FileRow]:
        query = f"SELECT {FILE_COLUMNS} FROM files WHERE role = 'library' AND error IS NULL"
        return (file_row(row) for row in self._db.execute(query))

    def library_hashes(
        self, ids: Sequence[int] | None = None
    ) -> tuple[NDArray[np.int64], NDArray[np.uint64], NDArray[np.uint64]]:
        """(ids, dHashes, pHashes) of the library files that can match by hashes, as arrays
        (of those of ``ids`` only, if given).

        Read column-wise: one query, its rows poured straight into one array (no object kept
        per row), in id order. A hash that is not an integer (a damaged row) is left out, for
        the daemon's background check to report (``store_check``).
        """
        query = (
            "SELECT id, dhash, phash FROM files WHERE role = 'library' AND error IS NULL"
            " AND flat = 0 AND typeof(dhash) = 'integer' AND typeof(phash) = 'integer'"
        )
        wanted = [] if ids is None else list(ids)
        statements = [(query, wanted)] if ids is None else [
            (query + f" AND id IN ({','.join('?' * len(part))})", part)
            for part in (wanted[at : at + 500] for at in range(0, len(wanted), 500))
        ]  # fmt: skip
        with self._lock:
            rows = chain.from_iterable(self._db.execute(*statement) for statement in statements)
            return _id_hash_columns(np.fromiter(chain.from_iterable(rows), np.int64))

    def library_fingerprints_under(
        self, roots: Sequence[str]
    ) -> tuple[NDArray[np.int64], NDArray[np.bool_]]:
        """(ids, flat) of the fingerprinted library files at or below any of ``roots``, as
        arrays: one range query on the path index per root, no object kept per row."""
        query = (
            "SELECT id, flat FROM files WHERE (path = ? OR (path >= ? AND path < ?))"
            " AND role = 'library' AND error IS NULL AND sha256 IS NOT NULL"
            " AND dhash IS NOT NULL AND phash IS NOT NULL"
        )
        with self._lock:
            rows = chain.from_iterable(
                self._db.execute(query, (_blob(root), *_below(root))) for root in roots
            )
            table = np.fromiter(chain.from_iterable(rows), np.int64).reshape(-1, 2)
        ids, first = np.unique(table[:, 0], return_index=True)  # roots may nest
        return ids, table[first, 1] != 0

    def incoming_hashes(
        self, after: int = 0
    ) -> tuple[NDArray[np.int64], NDArray[np.uint64], NDArray[np.uint64]]:
        """(ids, dHashes, pHashes) of the incoming files after id ``after`` that can near-match
        by their stored hashes: one query, poured column-wise into arrays."""
        query = (
            "SELECT id, dhash, phash FROM files WHERE id > ? AND role = 'incoming'"
            " AND error IS NULL AND flat = 0 AND dhash IS NOT NULL AND phash IS NOT NULL"
        )
        with self._lock:
            rows = self._db.execute(query, (after,))
            values = np.fromiter(chain.from_iterable(rows), np.int64)
        table = values.reshape(-1, 3)
        dhashes: NDArray[np.uint64] = np.ascontiguousarray(table[:, 1]).view(np.uint64)
        phashes: NDArray[np.uint64] = np.ascontiguousarray(table[:, 2]).view(np.uint64)
        return np.ascontiguousarray(table[:, 0]), dhashes, phashes

    def incoming_pdqs(
        self, min_quality: int, after: int = 0
    ) -> tuple[NDArray[np.int64], NDArray[np.uint64]]:
        """(ids, PDQs) of the incoming files after id ``after`` whose PDQ quality reaches
        ``min_quality``; each PDQ as 4 words, least significant first (``pdqindex.words``)."""
        query = (
            "SELECT id, pdq FROM files WHERE id > ? AND role = 'incoming' AND error IS NULL"
            " AND flat = 0 AND pdq IS NOT NULL AND pdq_quality >= ?"
        )
        with self._lock:
            rows = self._db.execute(query, (after, min_quality)).fetchall()
        ids = np.fromiter((row[0] for row in rows), np.int64, len(rows))
        data = b"".join(row[1] for row in rows)
        big = np.frombuffer(data, dtype=">u8").reshape(-1, 4)  # most significant word first
        return ids, np.ascontiguousarray(big[:, ::-1]).astype(np.uint64)

    def incoming_files_by_sha256(self, sha256s: Iterable[str]) -> list[FileRow]:
        """The incoming files whose bytes are exactly one of these."""
        wanted = sorted(set(sha256s))
        found: list[FileRow] = []
        for at in range(0, len(wanted), 500):
            part = wanted[at : at + 500]
            query = (
                f"SELECT {FILE_COLUMNS} FROM files WHERE role = 'incoming' AND error IS NULL"
                f" AND sha256 IN ({','.join('?' * len(part))})"
            )
            found += [file_row(row) for row in self._db.execute(query, part)]
        return found

    def library_change_state(self) -> tuple[int, int, int]:
        """(this store's id, the last library change's number, changes forgotten through):
        what an index snapshot is keyed by."""
        with self._lock:
            store_id, trimmed = self._counters("store_id", "library_trimmed")
            row = self._db.execute("SELECT MAX(seq) FROM library_changes").fetchone()
        return store_id, max(int(row[0] or 0), trimmed), trimmed

    def _counters(self, *names: str) -> list[int]:
        """These counters' values; a missing one means a damaged file (migrations made all)."""
        query = f"SELECT name, value FROM counters WHERE name IN ({','.join('?' * len(names))})"
        with self._lock:
            found = dict(self._db.execute(query, names).fetchall())
        missing = [name for name in names if not isinstance(found.get(name), int)]
        if missing:
            raise DatabaseDamaged(self.path, f"counters table: no {missing[0]!r} counter")
        return [int(found[name]) for name in names]

    def library_changed_after(self, seq: int) -> list[int]:
        """The ids of the library files added, changed or removed after change ``seq``."""
        query = "SELECT DISTINCT file_id FROM library_changes WHERE seq > ? ORDER BY file_id"
        with self._lock:
            return [row[0] for row in self._db.execute(query, (seq,))]

    def trim_library_changes(self, through: int) -> None:
        """Forget the changes up to ``through``: a snapshot at that change holds them."""
        with self.transaction() as db:
            db.execute("DELETE FROM library_changes WHERE seq <= ?", (through,))
            db.execute(
                "UPDATE counters SET value = MAX(value, ?) WHERE name = 'library_trimmed'",
                (through,),
            )

    def rename_paths(self, src: str, dest: str) -> int:
        """A file, or a directory's files, renamed: the rows follow. Returns how many moved.

        A row already at the new name (a file that the rename replaced) gives way.
        """
        old, new_top = _blob(src), _blob(dest)
        low, high = _below(src)
        new_prefix = new_top.rstrip(b"/") + b"/"
        with self.transaction() as db:
            moved = db.execute(
                "SELECT id, path FROM files WHERE path = ? OR (path >= ? AND path < ?)",
                (old, low, high),
            ).fetchall()
            for file_id, path in moved:
                new = new_top if path == old else new_prefix + path[len(low) :]
                db.execute("DELETE FROM files WHERE path = ? AND id != ?", (new, file_id))
                db.execute("UPDATE files SET path = ? WHERE id = ?", (new, file_id))
        return len(moved)

    def files_by_inode(self, device: int, inode: int) -> list[FileRow]:
        query = f"SELECT {FILE_COLUMNS} FROM files WHERE device = ? AND inode = ?"
        return [file_row(row) for row in self._db.execute(query, (device, inode))]

    def watch_indexed(self, path: str) -> bool:
        """Has this library watch's first index completed?"""
        query = "SELECT 1 FROM watches WHERE path = ?"
        row = self._db.execute(query, (_blob(path),)).fetchone()
        return row is not None

    def mark_watch_indexed(self, path: str, now: float) -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT OR IGNORE INTO watches (path, indexed) VALUES (?, ?)", (_blob(path), now)
            )

    def files_under(self, root: str) -> Iterator[tuple[int, str]]:
        """(id, path) of every file recorded at or below ``root``."""
        low, high = _below(root)
        query = "SELECT id, path FROM files WHERE path = ? OR (path >= ? AND path < ?)"
        rows = self._db.execute(query, (_blob(root), low, high)).fetchall()
        return iter([(file_id, path_of(path)) for file_id, path in rows])

    def save_file(self, path: str, stat: FileStat, role: Role, fp: Fingerprint, now: float) -> int:
        """Insert or update the file's row with a fresh fingerprint; returns its id."""
        values = (
            stat.device, stat.inode, stat.size, stat.mtime_ns, role.value, fp.sha256,
            to_signed(fp.dhash), to_signed(fp.phash), fp.width, fp.height, fp.format,
            int(fp.flat), fp.canon_version, pdq_blob(fp.pdq), fp.pdq_quality,
            *astuple(fp.provenance),
        )  # fmt: skip
        with self.transaction() as db:
            row = db.execute(
                "INSERT INTO files (path, device, inode, size, mtime_ns, role, sha256, dhash,"
                " phash, width, height, format, flat, canon_version, pdq, pdq_quality, camera,"
                " captured, software, jpeg_quality, error, first_seen, last_seen)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, ?, ?)"
                " ON CONFLICT (path) DO UPDATE SET device = excluded.device,"
                " inode = excluded.inode, size = excluded.size, mtime_ns = excluded.mtime_ns,"
                " role = excluded.role, sha256 = excluded.sha256, dhash = excluded.dhash,"
                " phash = excluded.phash, width = excluded.width, height = excluded.height,"
                " format = excluded.format, flat = excluded.flat,"
                " canon_version = excluded.canon_version, pdq = excluded.pdq,"
                " pdq_quality = excluded.pdq_quality, camera = excluded.camera,"
                " captured = excluded.captured, software = excluded.software,"
                " jpeg_quality = excluded.jpeg_quality, error = NULL,"
                " last_seen = excluded.last_seen RETURNING id",
                (_blob(path), *values, now, now),
            ).fetchone()
        return int(row[0])

    def save_file_error(
        self, path: str, stat: FileStat, role: Role, error: str, now: float
    ) -> None:
        """Remember that this version of the file could not be fingerprinted, and why."""
        with self.transaction() as db:
            db.execute(
                "INSERT INTO files (path, device, inode, size, mtime_ns, role, error,"
                " first_seen, last_seen) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (path) DO UPDATE SET device = excluded.device,"
                " inode = excluded.inode, size = excluded.size, mtime_ns = excluded.mtime_ns,"
                " role = excluded.role, sha256 = NULL, dhash = NULL, phash = NULL, pdq = NULL,"
                " pdq_quality = NULL, camera = NULL, captured = NULL, software = NULL,"
                " jpeg_quality = NULL, error = excluded.error, last_seen = excluded.last_seen",
                (_blob(path), stat.device, stat.inode, stat.size, stat.mtime_ns, role.value,
                 _text_or_none(error), now, now),
            )  # fmt: skip

    def touch_files(self, ids: Sequence[int], now: float) -> None:
        with self.transaction() as db:
            db.executemany("UPDATE files SET last_seen = ? WHERE id = ?", ((now, i) for i in ids))

    def forget_files(self, ids: Sequence[int]) -> None:
        with self.transaction() as db:
            db.executemany("DELETE FROM files WHERE id = ?", ((i,) for i in ids))

    def sha256s_in_use(self, candidates: Sequence[str]) -> set[str]:
        """Those of ``candidates`` that a file row or a file in the quarantine still holds
        (the review page's thumbnails are kept for them)."""
        found: set[str] = set()
        for start in range(0, len(candidates), 500):
            chunk = list(candidates[start : start + 500])
            marks = ",".join("?" * len(chunk))
            query = (
                f"SELECT sha256 FROM files WHERE sha256 IN ({marks}) UNION SELECT sha256 FROM"
                f" actions WHERE kind = 'quarantine' AND state = 'done' AND sha256 IN ({marks})"
            )
            found.update(row[0] for row in self._db.execute(query, chunk + chunk))
        return found

    def count_files(self) -> dict[str, int]:
        query = "SELECT role, COUNT(*) FROM files WHERE error IS NULL GROUP BY role"
        return {row[0]: row[1] for row in self._db.execute(query)}

    # -- lists and entries -----------------------------------------------------------------

    def create_list(self, name: str, kind: ListKind, description: str, now: float) -> int:
        with self.transaction() as db:
            row = db.execute(
                "INSERT INTO lists (name, kind, description, created) VALUES (?, ?, ?, ?)"
                " RETURNING id",
                (name, kind.value, description, now),
            ).fetchone()
        return int(row[0])

    def get_list(self, name: str) -> ListRow | None:
        return next(iter(self._lists("WHERE l.name = ?", (name,))), None)

    def lists(self) -> list[ListRow]:
        return self._lists("", ())

    def _lists(self, where: str, params: tuple[object, ...]) -> list[ListRow]:
        query = (
            "SELECT l.id, l.name, l.kind, l.description, l.created, COUNT(e.id),"
            " COALESCE(SUM(e.enabled), 0) FROM lists l LEFT JOIN entries e ON e.list_id = l.id"
            f" {where} GROUP BY l.id ORDER BY l.name"
        )
        return [
            ListRow(r[0], r[1], ListKind(r[2]), r[3], r[4], r[5], r[6])
            for r in self._db.execute(query, params)
        ]

    def delete_list(self, list_id: int) -> None:
        with self.transaction() as db:
            db.execute("DELETE FROM lists WHERE id = ?", (list_id,))

    def add_entries(
        self, list_id: int, entries: Iterable[NewEntry], now: float
    ) -> tuple[list[int], int]:
        """Add entries, skipping any the list already holds; returns (new ids, skipped).

        Committed in chunks, so that a large import never holds the write lock for long.
        """
        added: list[int] = []
        skipped = 0
        pending = list(entries)
        for start in range(0, len(pending), IMPORT_CHUNK):
            new, same = self._add_chunk(list_id, pending[start : start + IMPORT_CHUNK], now)
            added += new
            skipped += same
        return added, skipped

    def _add_chunk(
        self, list_id: int, entries: list[NewEntry], now: float
    ) -> tuple[list[int], int]:
        added: list[int] = []
        skipped = 0
        with self.transaction() as db:
            for entry in entries:
                dhash = None if entry.dhash is None else to_signed(entry.dhash)
                phash = None if entry.phash is None else to_signed(entry.phash)
                pdq = pdq_blob(entry.pdq)
                same = db.execute(
                    "SELECT 1 FROM entries WHERE list_id = ? AND sha256 IS ? AND dhash IS ?"
                    " AND phash IS ? AND pdq IS ?",
                    (list_id, entry.sha256, dhash, phash, pdq),
                ).fetchone()
                if same:
                    skipped += 1
                    continue
                row = db.execute(
                    "INSERT INTO entries (list_id, sha256, dhash, phash, flat, canon_version,"
                    " label, source, added, enabled, pdq, pdq_quality)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                    (list_id, entry.sha256, dhash, phash, int(entry.flat), CANON_VERSION,
                     entry.label, entry.source, now, int(entry.enabled), pdq,
                     entry.pdq_quality),
                ).fetchone()  # fmt: skip
                added.append(int(row[0]))
                db.executemany(
                    "INSERT INTO entry_regions (entry_id, region, dhash, phash)"
                    " VALUES (?, ?, ?, ?)",
                    ((row[0], name, to_signed(d), to_signed(p)) for name, d, p in entry.regions),
                )
        return added, skipped

    def entries(
        self, list_name: str | None = None, ids: Iterable[int] | None = None
    ) -> list[EntryRow]:
        query = f"SELECT {ENTRY_COLUMNS} FROM entries e JOIN lists l ON l.id = e.list_id"
        clauses: list[str] = []
        params: list[object] = []
        if list_name is not None:
            clauses.append("l.name = ?")
            params.append(list_name)
        if ids is not None:
            wanted = list(ids)
            if not wanted:
                return []  # an empty "e.id IN ()" is planned as a scan of every entry
            clauses.append(f"e.id IN ({','.join('?' * len(wanted))})")
            params.extend(wanted)
        if clauses:
            query += " WHERE " + " AND ".join(clauses)
        return [entry_row(row) for row in self._db.execute(query + " ORDER BY e.id", params)]

    def entries_by_sha256(self, sha256: str) -> list[EntryRow]:
        query = (
            f"SELECT {ENTRY_COLUMNS} FROM entries e JOIN lists l ON l.id = e.list_id"
            " WHERE e.sha256 = ? AND e.enabled = 1 ORDER BY e.id"
        )
        return [entry_row(row) for row in self._db.execute(query, (sha256,))]

    def set_entries_enabled(self, ids: Sequence[int], enabled: bool) -> int:
        with self.transaction() as db:
            cursor = db.executemany(
                "UPDATE entries SET enabled = ? WHERE id = ?", ((int(enabled), i) for i in ids)
            )
        return cursor.rowcount

    def remove_entries(self, ids: Sequence[int]) -> int:
        with self.transaction() as db:
            cursor = db.executemany("DELETE FROM entries WHERE id = ?", ((i,) for i in ids))
        return cursor.rowcount

    def record_hits(self, ids: Sequence[int], now: float) -> None:
        with self.transaction() as db:
            db.executemany(
                "UPDATE entries SET hits = hits + 1, last_hit = ? WHERE id = ?",
                ((now, i) for i in ids),
            )

    def entry_counters(self) -> tuple[int, int]:
        """(entries added, entries changed or removed) so far: live reloads compare these."""
        added, changed = self._counters("entries_added", "entries_changed")
        return added, changed

    def last_entry_id(self) -> int:
        row = self._db.execute("SELECT MAX(id) FROM entries").fetchone()
        return int(row[0] or 0)

    def block_entry_ids(self, after: int) -> list[int]:
        """The enabled block entries added after entry ``after``."""
        query = (
            "SELECT e.id FROM entries e JOIN lists l ON l.id = e.list_id"
            " WHERE e.id > ? AND e.enabled = 1 AND l.kind = 'block' ORDER BY e.id"
        )
        return [row[0] for row in self._db.execute(query, (after,))]

    def disabled_entry_ids(self) -> set[int]:
        return {row[0] for row in self._db.execute("SELECT id FROM entries WHERE enabled = 0")}

    def retro_state(self) -> tuple[int, set[int]] | None:
        """(the last entry, the entries disabled) as the daemon last matched new bans against
        the stored files, where its next session resumes (``retroactive.NewBans``); None if no
        daemon has yet. Counters rows, written by ``save_retro_state`` (no migration)."""
        query = "SELECT name, value FROM counters WHERE name GLOB 'retro_*'"
        with self._lock:
            rows = dict(self._db.execute(query).fetchall())
        last = rows.pop(RETRO_LAST, None)
        if not isinstance(last, int):
            return None
        return last, {v for k, v in rows.items() if k.startswith(RETRO_OFF) and isinstance(v, int)}

    def save_retro_state(self, last_id: int, disabled: set[int], enabled: set[int]) -> None:
        """The daemon matched the entries through ``last_id``; ``disabled`` were disabled and
        ``enabled`` enabled again (or removed) since the state saved before."""
        upsert = (
            "INSERT INTO counters (name, value) VALUES (?, ?)"
            " ON CONFLICT (name) DO UPDATE SET value = excluded.value"
        )
        with self.transaction() as db:
            db.execute(upsert, (RETRO_LAST, last_id))
            db.executemany("DELETE FROM counters WHERE name = ?",
                           ((f"{RETRO_OFF}{i}",) for i in enabled))  # fmt: skip
            db.executemany(upsert, ((f"{RETRO_OFF}{i}", i) for i in disabled))

    def near_entry_hashes_after(
        self, last_id: int
    ) -> tuple[NDArray[np.int64], NDArray[np.uint64], NDArray[np.uint64]]:
        """(ids, dHashes, pHashes) of the enabled entries after ``last_id`` that can match by
        hashes, as arrays (read column-wise, as ``library_hashes``)."""
        query = (
            "SELECT id, dhash, phash FROM entries WHERE id > ? AND enabled = 1 AND flat = 0"
            " AND dhash IS NOT NULL AND phash IS NOT NULL"
        )
        with self._lock:
            rows = self._db.execute(query, (last_id,))
            return _id_hash_columns(np.fromiter(chain.from_iterable(rows), np.int64))

    def entry_region_hashes_after(
        self, last_id: int
    ) -> tuple[NDArray[np.int64], NDArray[np.uint64], NDArray[np.uint64]]:
        """(keys, dHashes, pHashes) of the centre crops of the enabled entries after
        ``last_id``, as arrays; a key is ``region_key(entry id, region)``."""
        codes = " ".join(f"WHEN '{name}' THEN {code}" for code, name in enumerate(REGIONS) if code)
        query = (
            f"SELECT r.entry_id * {len(REGIONS)} + CASE r.region {codes} ELSE 0 END, r.dhash,"
            " r.phash FROM entry_regions r JOIN entries e ON e.id = r.entry_id"
            " WHERE r.entry_id > ? AND e.enabled = 1 AND e.flat = 0"
        )
        with self._lock:
            rows = self._db.execute(query, (last_id,))
            return _id_hash_columns(np.fromiter(chain.from_iterable(rows), np.int64))

    def pdq_entry_hashes_after(
        self, last_id: int, min_quality: int
    ) -> tuple[NDArray[np.int64], NDArray[np.uint8]]:
        """(ids, PDQs as stored: 32 big-endian bytes a row) of the enabled, non-flat entries
        after ``last_id`` with a PDQ whose quality is unknown or at least ``min_quality``: the
        ones that may near-match by PDQ. Arrays: no int is made per PDQ."""
        query = (
            "SELECT id, pdq FROM entries WHERE id > ? AND enabled = 1 AND flat = 0"
            " AND pdq IS NOT NULL AND (pdq_quality IS NULL OR pdq_quality >= ?)"
        )
        with self._lock:
            rows = self._db.execute(query, (last_id, min_quality)).fetchall()
        ids = np.fromiter((row[0] for row in rows), np.int64, len(rows))
        pdqs = np.frombuffer(b"".join(row[1] for row in rows), np.uint8).reshape(-1, 32)
        return ids, pdqs

    # -- the action journal ------------------------------------------------------------------

    def intend(self, action: NewAction, now: float) -> int:
        """Record an action before it happens; returns its id."""
        a = action
        with self.durable() as db:
            row = db.execute(
                "INSERT INTO actions (kind, state, src_root, src_rel, dst_root, dst_rel, tmp_name,"
                " sha256, device, inode, size, mtime_ns, atime_ns, uid, gid, mode, verdict,"
                " evidence, rule, reverses, created, batch_id) VALUES (?, 'intended', ?, ?, ?,"
                " ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                (a.kind, _blob(a.src_root), _blob(a.src_rel), _blob_or_none(a.dst_root),
                 _blob_or_none(a.dst_rel), _blob_or_none(a.tmp_name), a.sha256,
                 a.stat.device, a.stat.inode, a.stat.size, a.stat.mtime_ns, a.atime_ns, a.uid,
                 a.gid, a.mode, a.verdict, a.evidence, a.rule, a.reverses, now, a.batch_id),
            ).fetchone()  # fmt: skip
        return int(row[0])

    def retarget(self, action_id: int, dst_rel: str) -> None:
        """The destination name was taken: the journal must name the one actually used."""
        with self.durable() as db:
            db.execute("UPDATE actions SET dst_rel = ? WHERE id = ?", (_blob(dst_rel), action_id))

    def finish(self, action_id: int, state: str, now: float, error: str | None = None) -> None:
        """Record how an action ended; ``StoreError`` names why if it cannot be written."""
        try:
            with self.transaction() as db:
                db.execute(
                    "UPDATE actions SET state = ?, error = ?, finished = ? WHERE id = ?",
                    (state, _text_or_none(error), now, action_id),
                )
        except sqlite3.Error as exc:
            raise StoreError(str(exc)) from exc

    def action(self, action_id: int) -> ActionRow | None:
        row = self._db.execute(f"SELECT {ACTION_COLUMNS} FROM actions WHERE id = ?", (action_id,))
        found = row.fetchone()
        return action_row(found) if found else None

    def actions(
        self, *, kind: str | None = None, state: str | None = None, since: float | None = None,
        batch: int | None = None, ids: tuple[int, int] | None = None,
        reverses: int | None = None,
    ) -> list[ActionRow]:  # fmt: skip
        """Actions in id order, of whichever kind, state, batch or id range is given, created at
        ``since`` or later, or reversing one action."""
        given = {"kind = ?": kind, "state = ?": state, "created >= ?": since,
                 "batch_id = ?": batch, "reverses = ?": reverses}  # fmt: skip
        clauses = [clause for clause, value in given.items() if value is not None]
        params = [value for value in given.values() if value is not None]
        if ids is not None:
            clauses.append("id BETWEEN ? AND ?")
            params.extend(ids)
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        query = f"SELECT {ACTION_COLUMNS} FROM actions{where} ORDER BY id"
        return [action_row(r) for r in self._db.execute(query, params)]

    def start_batch(self, command: str, now: float) -> int:
        with self.durable() as db:
            row = db.execute(
                "INSERT INTO batches (command, started) VALUES (?, ?) RETURNING id", (command, now)
            ).fetchone()
        return int(row[0])

    def finish_batch(self, batch_id: int, now: float) -> None:
        with self.transaction() as db:
            db.execute("UPDATE batches SET finished = ? WHERE id = ?", (now, batch_id))

    def batch(self, batch_id: int | None = None) -> BatchRow | None:
        """One batch, or the last one (``None``), with how many actions it holds."""
        where = "WHERE id = ?" if batch_id is not None else "ORDER BY id DESC LIMIT 1"
        params = (batch_id,) if batch_id is not None else ()
        row = self._db.execute(
            "SELECT id, command, started, finished, (SELECT COUNT(*) FROM actions"
            f" WHERE batch_id = b.id) FROM batches AS b {where}", params,
        ).fetchone()  # fmt: skip
        return None if row is None else BatchRow(*row)

    def forget_path(self, path: str) -> None:
        with self.transaction() as db:
            db.execute("DELETE FROM files WHERE path = ?", (_blob(path),))

    # -- exemptions: files an undo put back, kept at that place with that content ----------

    def exempt(self, action_id: int, path: str, sha256: str, now: float) -> None:
        with self.durable() as db:
            db.execute(
                "INSERT INTO exemptions (action_id, path, sha256, created) VALUES (?, ?, ?, ?)",
                (action_id, _blob(path), sha256, now),
            )

    def move_exemption(self, action_id: int, path: str) -> None:
        with self.durable() as db:
            db.execute(
                "UPDATE exemptions SET path = ? WHERE action_id = ?",
                (_blob(path), action_id),
            )

    def drop_exemption(self, action_id: int) -> None:
        with self.transaction() as db:
            db.execute("DELETE FROM exemptions WHERE action_id = ?", (action_id,))

    def exemption(self, path: str, sha256: str) -> int | None:
        """The action that put this very file back at this place, if one did."""
        row = self._db.execute(
            "SELECT MAX(action_id) FROM exemptions WHERE path = ? AND sha256 = ?",
            (_blob(path), sha256),
        ).fetchone()
        return None if row[0] is None else int(row[0])

    # -- retries: the daemon's pending retries, for ``status`` -------------------------------

    def save_retries(self, due: Iterable[RetryRow], done: Iterable[tuple[str, str]]) -> None:
        """Record retries scheduled or rescheduled, and forget those that are over."""
        with self.transaction() as db:
            db.executemany(
                "DELETE FROM retries WHERE kind = ? AND path = ?",
                ((kind, _blob(path)) for kind, path in done),
            )
            db.executemany(
                "INSERT OR REPLACE INTO retries (kind, path, attempts, due, reason)"
                " VALUES (?, ?, ?, ?, ?)",
                ((r.kind, _blob(r.path), r.attempts, r.due, r.reason) for r in due),
            )

    def clear_retries(self) -> None:
        with self.transaction() as db:
            db.execute("DELETE FROM retries")

    def retries(self) -> list[RetryRow]:
        query = "SELECT kind, path, attempts, due, reason FROM retries ORDER BY due, path"
        return [
            RetryRow(r[0], os.fsdecode(r[1]), r[2], r[3], r[4]) for r in self._db.execute(query)
        ]

    # -- the WAL -------------------------------------------------------------------------

    def wal_size(self) -> int:
        try:
            return os.stat(f"{self.path}-wal").st_size
        except FileNotFoundError:
            return 0

    def trim_wal(self, threshold: int) -> bool:
        """Checkpoint and truncate the WAL once it has grown past ``threshold`` bytes.

        SQLite's own checkpoints never reset the WAL while some reader is always open (the
        daemon's threads overlap under load), so it would grow without bound. Returns whether
        the WAL is small now.
        """
        if self.wal_size() <= threshold:
            return True
        busy = self.checkpoint()
        return not busy and self.wal_size() <= threshold

    def checkpoint(self) -> bool:
        """Copy the WAL into the database and truncate it, waiting briefly for the writer and
        readers; returns True if it was busy (tried again later)."""
        with self._lock:
            self._db.execute(f"PRAGMA busy_timeout = {CHECKPOINT_WAIT_MS}")
            try:
                row = self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            finally:
                self._db.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT * 1000)}")
        return bool(row[0])
