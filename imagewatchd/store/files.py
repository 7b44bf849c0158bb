"""The store's queries on files: every image seen in a watched tree, and the library's change
log (``library_changes``, what an index snapshot is brought up to date from)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import astuple
from itertools import chain

import numpy as np
from numpy.typing import NDArray

from imagewatchd.models import FileStat, Fingerprint, Role
from imagewatchd.rows import FILE_COLUMNS, FileRow, file_row, path_of, pdq_blob, to_signed
from imagewatchd.store.base import Connected, below, blob, id_hash_columns, text_or_none


class FileQueries(Connected):
    """Files: saved as they are fingerprinted, read by path, inode, sha256 or role."""

    def get_file(self, path: str) -> FileRow | None:
        query = f"SELECT {FILE_COLUMNS} FROM files WHERE path = ?"
        row = self._db.execute(query, (blob(path),))
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
            f"SELECT {self.dialect.id_list} FROM (SELECT id, sha256 FROM files"
            " WHERE role = 'library' AND sha256 IS NOT NULL ORDER BY sha256, id) AS copies"
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
        the daemon's background check to report (``sqlite_check``).
        """
        query = (
            "SELECT id, dhash, phash FROM files WHERE role = 'library' AND error IS NULL"
            f" AND flat = 0 AND {self.dialect.is_integer('dhash')}"
            f" AND {self.dialect.is_integer('phash')}"
        )
        wanted = [] if ids is None else list(ids)
        statements = [(query, wanted)] if ids is None else [
            (query + f" AND id IN ({','.join('?' * len(part))})", part)
            for part in (wanted[at : at + 500] for at in range(0, len(wanted), 500))
        ]  # fmt: skip
        with self._lock:
            rows = chain.from_iterable(self._db.execute(*statement) for statement in statements)
            return id_hash_columns(np.fromiter(chain.from_iterable(rows), np.int64))

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
                self._db.execute(query, (blob(root), *below(root))) for root in roots
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

    def incoming_sha256s(self) -> list[tuple[int, str]]:
        """(id, sha256) of every incoming file that a ban can reach (read without an error):
        one query; none when there are no stored incoming files."""
        query = "SELECT id, sha256 FROM files WHERE role = 'incoming' AND error IS NULL"
        with self._lock:
            return [(row[0], row[1]) for row in self._db.execute(query) if row[1] is not None]

    def library_change_state(self) -> tuple[int, int, int]:
        """(this store's id, the last library change's number, changes forgotten through):
        what an index snapshot is keyed by."""
        with self._lock:
            store_id, trimmed = self._counters("store_id", "library_trimmed")
            row = self._db.execute("SELECT MAX(seq) FROM library_changes").fetchone()
        return store_id, max(int(row[0] or 0), trimmed), trimmed

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
                "UPDATE counters SET value = CASE WHEN value > ? THEN value ELSE ? END"
                " WHERE name = 'library_trimmed'",
                (through, through),
            )

    def rename_paths(self, src: str, dest: str) -> int:
        """A file, or a directory's files, renamed: the rows follow. Returns how many moved.

        A row already at the new name (a file that the rename replaced) gives way.
        """
        old, new_top = blob(src), blob(dest)
        low, high = below(src)
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
        row = self._db.execute(query, (blob(path),)).fetchone()
        return row is not None

    def mark_watch_indexed(self, path: str, now: float) -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT INTO watches (path, indexed) VALUES (?, ?) ON CONFLICT DO NOTHING",
                (blob(path), now),
            )

    def files_under(self, root: str) -> Iterator[tuple[int, str]]:
        """(id, path) of every file recorded at or below ``root``."""
        low, high = below(root)
        query = "SELECT id, path FROM files WHERE path = ? OR (path >= ? AND path < ?)"
        rows = self._db.execute(query, (blob(root), low, high)).fetchall()
        return iter([(file_id, path_of(path)) for file_id, path in rows])

    def save_file(self, path: str, stat: FileStat, role: Role, fp: Fingerprint, now: float) -> int:
        """Insert or update the file's row with a fresh fingerprint; returns its id."""
        values = (
            stat.device, stat.inode, stat.size, stat.mtime_ns, role.value, fp.sha256,
            to_signed(fp.dhash), to_signed(fp.phash), fp.width, fp.height, fp.format,
            int(fp.flat), fp.canon_version, pdq_blob(fp.pdq), fp.pdq_quality,
            *astuple(fp.provenance), fp.colours,
        )  # fmt: skip
        with self.transaction() as db:
            row = db.execute(
                "INSERT INTO files (path, device, inode, size, mtime_ns, role, sha256, dhash,"
                " phash, width, height, format, flat, canon_version, pdq, pdq_quality, camera,"
                " captured, software, jpeg_quality, colours, error, first_seen, last_seen) VALUES"
                " (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, ?, ?)"
                f" ON CONFLICT {self.dialect.key('path')} DO UPDATE SET device = excluded.device,"
                " inode = excluded.inode, size = excluded.size, mtime_ns = excluded.mtime_ns,"
                " role = excluded.role, sha256 = excluded.sha256, dhash = excluded.dhash,"
                " phash = excluded.phash, width = excluded.width, height = excluded.height,"
                " format = excluded.format, flat = excluded.flat,"
                " canon_version = excluded.canon_version, pdq = excluded.pdq,"
                " pdq_quality = excluded.pdq_quality, camera = excluded.camera,"
                " captured = excluded.captured, software = excluded.software,"
                " jpeg_quality = excluded.jpeg_quality, colours = excluded.colours, error = NULL,"
                " last_seen = excluded.last_seen RETURNING id",
                (blob(path), *values, now, now),
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
                f" ON CONFLICT {self.dialect.key('path')} DO UPDATE SET device = excluded.device,"
                " inode = excluded.inode, size = excluded.size, mtime_ns = excluded.mtime_ns,"
                " role = excluded.role, sha256 = NULL, dhash = NULL, phash = NULL, pdq = NULL,"
                " pdq_quality = NULL, camera = NULL, captured = NULL, software = NULL,"
                " jpeg_quality = NULL, colours = NULL, error = excluded.error,"
                " last_seen = excluded.last_seen",
                (blob(path), stat.device, stat.inode, stat.size, stat.mtime_ns, role.value,
                 text_or_none(error), now, now),
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
