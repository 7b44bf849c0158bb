"""The store's SQL for durable library decisions (see ``imagewatchd/decisions.py``).

A decision names pictures by sha256, so it survives renames, moves and re-fingerprinting; an
edit makes a new picture, which the decision no longer covers. A "not duplicate" pair is kept
once, its smaller sha256 first.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from imagewatchd.store.base import Connected

KEEP = "keep"
NOT_DUPLICATE = "not_duplicate"
CHUNK = 500  # sha256s per IN (...) list


@dataclass(frozen=True, slots=True)
class DecisionRow:
    id: int
    kind: str  # KEEP or NOT_DUPLICATE
    sha256: str
    other: str | None  # NOT_DUPLICATE: the other picture
    paths: str  # the files named when the decision was taken (shown form)
    created: float


class DecisionQueries(Connected):
    """Decisions: taken by people (``dupes keep`` / ``dupes not-duplicate``), read per file."""

    def add_decision(
        self, kind: str, sha256: str, other: str | None, paths: str, now: float
    ) -> tuple[int, bool]:
        """(id, new?): an existing identical decision is returned, not taken twice."""
        if other is not None and other < sha256:
            sha256, other = other, sha256
        key = (kind, sha256, other or "")
        with self.transaction() as db:
            found = db.execute(
                "SELECT id FROM decisions WHERE kind = ? AND sha256 = ? AND other = ?", key
            ).fetchone()
            if found is not None:
                return int(found[0]), False
            row = db.execute(
                "INSERT INTO decisions (kind, sha256, other, paths, created)"
                " VALUES (?, ?, ?, ?, ?) RETURNING id", (*key, paths, now),
            ).fetchone()  # fmt: skip
            return int(row[0]), True

    def decisions(self, ids: Sequence[int] | None = None) -> list[DecisionRow]:
        query = "SELECT id, kind, sha256, other, paths, created FROM decisions"
        with self._lock:
            if ids is None:
                rows = self._db.execute(query + " ORDER BY id").fetchall()
            else:
                rows = [
                    row
                    for part in _chunks(list(ids))
                    for row in self._db.execute(
                        f"{query} WHERE id IN ({','.join('?' * len(part))})", part
                    )
                ]
        return [_decision(row) for row in sorted(rows)]

    def remove_decisions(self, ids: Sequence[int]) -> int:
        with self.transaction() as db:
            return sum(
                db.execute(
                    f"DELETE FROM decisions WHERE id IN ({','.join('?' * len(part))})", part
                ).rowcount
                for part in _chunks(list(ids))
            )

    def not_duplicates(self, sha256: str) -> set[str]:
        """The pictures someone said this one is not a duplicate of (two index searches)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT other FROM decisions WHERE kind = 'not_duplicate' AND sha256 = ?"
                " UNION ALL "
                "SELECT sha256 FROM decisions WHERE other = ? AND kind = 'not_duplicate'",
                (sha256, sha256),
            ).fetchall()
        return {row[0] for row in rows}

    def kept(self, sha256: str) -> int | None:
        """The decision that keeps this picture, if one does."""
        with self._lock:
            row = self._db.execute(
                "SELECT id FROM decisions WHERE kind = 'keep' AND sha256 = ? AND other = ''",
                (sha256,),
            ).fetchone()
        return None if row is None else int(row[0])

    def decisions_among(self, sha256s: Iterable[str]) -> tuple[dict[str, int], set[frozenset[str]]]:
        """For these pictures: which are kept (by which decision), and which pairs are not
        duplicates (pairs with at least one of them)."""
        kept: dict[str, int] = {}
        pairs: set[frozenset[str]] = set()
        with self._lock:
            for part in _chunks(sorted(set(sha256s))):
                marks = ",".join("?" * len(part))
                for id_, kind, a, b in self._db.execute(
                    f"SELECT id, kind, sha256, other FROM decisions WHERE sha256 IN ({marks})"
                    f" UNION SELECT id, kind, sha256, other FROM decisions"
                    f" WHERE other IN ({marks}) AND kind = 'not_duplicate'",
                    (*part, *part),
                ):
                    if kind == KEEP:
                        kept[a] = int(id_)
                    else:
                        pairs.add(frozenset((a, b)))
        return kept, pairs


def _decision(row: tuple[int, str, str, str, str, float]) -> DecisionRow:
    id_, kind, sha256, other, paths, created = row
    return DecisionRow(int(id_), kind, sha256, other or None, paths, float(created))


def _chunks(items: list[str] | list[int]) -> Iterator[list[str] | list[int]]:
    for start in range(0, len(items), CHUNK):
        yield items[start : start + CHUNK]
