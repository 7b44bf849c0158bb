"""The store's queries on the action journal (actions, batches), the exemptions an undo
leaves, and the daemon's pending retries."""

from __future__ import annotations

import os
from collections.abc import Iterable

from imagewatchd.errors import StoreError
from imagewatchd.rows import ACTION_COLUMNS, ActionRow, BatchRow, NewAction, RetryRow, action_row
from imagewatchd.store.base import Connected, blob, blob_or_none, text_or_none


class JournalQueries(Connected):
    """The journal: every action recorded before it happens, and how it ended."""

    def intend(self, action: NewAction, now: float) -> int:
        """Record an action before it happens; returns its id."""
        a = action
        with self.durable() as db:
            row = db.execute(
                "INSERT INTO actions (kind, state, src_root, src_rel, dst_root, dst_rel, tmp_name,"
                " sha256, device, inode, size, mtime_ns, atime_ns, uid, gid, mode, verdict,"
                " evidence, rule, reverses, created, batch_id) VALUES (?, 'intended', ?, ?, ?,"
                " ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                (a.kind, blob(a.src_root), blob(a.src_rel), blob_or_none(a.dst_root),
                 blob_or_none(a.dst_rel), blob_or_none(a.tmp_name), a.sha256,
                 a.stat.device, a.stat.inode, a.stat.size, a.stat.mtime_ns, a.atime_ns, a.uid,
                 a.gid, a.mode, a.verdict, a.evidence, a.rule, a.reverses, now, a.batch_id),
            ).fetchone()  # fmt: skip
        return int(row[0])

    def retarget(self, action_id: int, dst_rel: str) -> None:
        """The destination name was taken: the journal must name the one actually used."""
        with self.durable() as db:
            db.execute("UPDATE actions SET dst_rel = ? WHERE id = ?", (blob(dst_rel), action_id))

    def finish(self, action_id: int, state: str, now: float, error: str | None = None) -> None:
        """Record how an action ended; ``StoreError`` names why if it cannot be written."""
        try:
            with self.transaction() as db:
                db.execute(
                    "UPDATE actions SET state = ?, error = ?, finished = ? WHERE id = ?",
                    (state, text_or_none(error), now, action_id),
                )
        except self.errors as exc:
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
            db.execute("DELETE FROM files WHERE path = ?", (blob(path),))

    # -- exemptions: files an undo put back, kept at that place with that content ----------

    def exempt(self, action_id: int, path: str, sha256: str, now: float) -> None:
        with self.durable() as db:
            db.execute(
                "INSERT INTO exemptions (action_id, path, sha256, created) VALUES (?, ?, ?, ?)",
                (action_id, blob(path), sha256, now),
            )

    def move_exemption(self, action_id: int, path: str) -> None:
        with self.durable() as db:
            db.execute(
                "UPDATE exemptions SET path = ? WHERE action_id = ?",
                (blob(path), action_id),
            )

    def drop_exemption(self, action_id: int) -> None:
        with self.transaction() as db:
            db.execute("DELETE FROM exemptions WHERE action_id = ?", (action_id,))

    def exemption(self, path: str, sha256: str) -> int | None:
        """The action that put this very file back at this place, if one did."""
        row = self._db.execute(
            "SELECT MAX(action_id) FROM exemptions WHERE path = ? AND sha256 = ?",
            (blob(path), sha256),
        ).fetchone()
        return None if row[0] is None else int(row[0])

    # -- retries: the daemon's pending retries, for ``status`` -------------------------------

    def save_retries(self, due: Iterable[RetryRow], done: Iterable[tuple[str, str]]) -> None:
        """Record retries scheduled or rescheduled, and forget those that are over."""
        with self.transaction() as db:
            db.executemany(
                "DELETE FROM retries WHERE kind = ? AND path = ?",
                ((kind, blob(path)) for kind, path in done),
            )
            db.executemany(
                "INSERT INTO retries (kind, path, attempts, due, reason) VALUES (?, ?, ?, ?, ?)"
                f" ON CONFLICT {self.dialect.key('kind, path')} DO UPDATE SET"
                " attempts = excluded.attempts, due = excluded.due, reason = excluded.reason",
                ((r.kind, blob(r.path), r.attempts, r.due, r.reason) for r in due),
            )

    def clear_retries(self) -> None:
        with self.transaction() as db:
            db.execute("DELETE FROM retries")

    def retries(self) -> list[RetryRow]:
        query = "SELECT kind, path, attempts, due, reason FROM retries ORDER BY due, path"
        return [
            RetryRow(r[0], os.fsdecode(r[1]), r[2], r[3], r[4]) for r in self._db.execute(query)
        ]
