"""The store's health: is this file a whole, readable imagewatchd database?

Part of the store (SQL runs only in the store's modules). ``damage`` tells an error that means a
damaged file (SQLITE_CORRUPT, SQLITE_NOTADB, stored text that is not UTF-8) apart from the
other database errors (locked, full, read-only). ``check`` is what ``imagewatchd db check`` runs
(thorough: ``PRAGMA integrity_check``) and what the daemon runs in the background once it is
ready (quick: ``PRAGMA quick_check``): the file's structure, the foreign keys, the migrations
table, the tables as the migrations create them, and the type of every value the code decodes
(sha256 hex, hashes integers, paths TEXT or BLOB: ``typeof()``, so either schema passes).
``startup_check`` is what the daemon checks before it acts on anything, in a time that does not
grow with the library: each table's first and last rows, and the values of the rows that
recovery and the list index read at start-up.
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Callable
from pathlib import Path

from imagewatchd.models import ListKind, Role
from imagewatchd.rows import DamagedRow
from imagewatchd.schema import MIGRATIONS

# What a damaged file raises: test them with ``damage``.
DAMAGE_ERRORS = (sqlite3.DatabaseError, UnicodeDecodeError, DamagedRow)
SQLITE_CORRUPT = 11
SQLITE_NOTADB = 26
SHOWN_PER_TABLE = 5  # damaged rows listed by name per table; the rest are counted
HEX = frozenset(b"0123456789abcdef")


def damage(exc: BaseException) -> str | None:
    """What is damaged, when ``exc`` means the database file is damaged; else None."""
    if isinstance(exc, DamagedRow):  # a value of the wrong type, read before a check found it
        return str(exc)
    if isinstance(exc, UnicodeDecodeError):  # SQLite's own message, or a stored text
        return exc.object.decode("utf-8", "replace") if exc.object else "text is not UTF-8"
    if not isinstance(exc, sqlite3.DatabaseError):
        return None
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None and code & 0xFF in (SQLITE_CORRUPT, SQLITE_NOTADB):
        return str(exc)
    if "Could not decode to UTF-8" in str(exc):  # raised by Python's sqlite3, without a code
        return str(exc)
    return None


def open_for_checking(path: Path) -> sqlite3.Connection:
    """The file as it is, read-only: no migration, no journal mode change, nothing created."""
    return sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True, timeout=30.0)


# -- what the migrations create -----------------------------------------------------------

Shape = dict[tuple[str, str], object]


def shape(db: sqlite3.Connection) -> Shape:
    """Every table's columns, every index's columns, every trigger's text."""
    found: Shape = {}
    query = "SELECT type, name, tbl_name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'"
    for kind, name, table, sql in db.execute(query).fetchall():
        if kind == "table":
            found[kind, name] = db.execute(f'PRAGMA table_xinfo("{name}")').fetchall()
        elif kind == "index":
            found[kind, name] = (table, db.execute(f'PRAGMA index_xinfo("{name}")').fetchall())
        else:
            found[kind, name] = (table, " ".join(str(sql).split()))
    return found


@functools.cache
def expected_shape(version: int) -> Shape:
    db = sqlite3.connect(":memory:")
    try:
        db.execute(
            "CREATE TABLE migrations "
            "(version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied REAL NOT NULL)"
        )
        for number, _, sql in MIGRATIONS:
            if number <= version:
                db.executescript(sql)
        return shape(db)
    finally:
        db.close()


def shape_problems(db: sqlite3.Connection, version: int) -> list[str]:
    want, have = expected_shape(version), shape(db)
    problems = []
    for key in sorted(want.keys() | have.keys(), key=repr):  # a damaged name may be bytes
        kind, name = key
        if key not in have:
            problems.append(f"{kind} {name} is missing")
        elif key not in want:
            problems.append(f"unexpected {kind} {name}")
        elif want[key] != have[key]:
            problems.append(f"{kind} {name} differs from what migration {version} creates")
    return problems


def migration_problems(db: sqlite3.Connection) -> tuple[int, list[str]]:
    """(the schema version, problems): versions must be the integers 1..N, each once."""
    if not db.execute("SELECT 1 FROM sqlite_master WHERE name = 'migrations'").fetchone():
        return 0, []  # a new database
    rows = db.execute("SELECT version, typeof(version) FROM migrations ORDER BY 1").fetchall()
    versions = [v for v, kind in rows if kind == "integer"]
    ours = [v for v in versions if v <= MIGRATIONS[-1][0]]  # later ones: a newer imagewatchd
    if len(versions) != len(rows) or ours != list(range(1, len(ours) + 1)):
        return 0, [f"the migrations table is not 1..N: {[v for v, _ in rows][:12]!r}"]
    return len(ours), []


# -- the type of every value the code decodes -------------------------------------------------


def _one_of(*values: str) -> str:
    return "typeof({c}) = 'text' AND {c} IN (" + ", ".join(f"'{v}'" for v in values) + ")"


INT = "typeof({c}) = 'integer'"
NUM = "typeof({c}) IN ('integer', 'real')"
TEXT = "typeof({c}) = 'text' AND iw_utf8(CAST({c} AS BLOB))"
PATH = "typeof({c}) = 'blob' OR " + TEXT
SHA256 = "typeof({c}) = 'text' AND iw_hex64(CAST({c} AS BLOB))"
ROLE = _one_of(*(r.value for r in Role))
KIND = _one_of(*(k.value for k in ListKind))


PDQ = "typeof({c}) = 'blob' AND length({c}) = 32"


def _opt(rule: str) -> str:
    return "{c} IS NULL OR " + rule


def _columns(rule: str, *names: str) -> dict[str, str]:
    return dict.fromkeys(names, rule)


# Action kinds and states are only required to be text: their CHECK lists belong to the journal
# and may grow; recovery acts on state 'intended' alone.
RULES: dict[str, dict[str, str]] = {
    "files": {
        "path": PATH, "role": ROLE, "sha256": _opt(SHA256), "format": _opt(TEXT),
        "error": _opt(TEXT), "first_seen": NUM, "last_seen": NUM,
        **_columns(INT, "device", "inode", "size", "mtime_ns", "flat"),
        **_columns(_opt(INT), "dhash", "phash", "width", "height", "canon_version"),
        "pdq": _opt(PDQ), "pdq_quality": _opt(INT), "jpeg_quality": _opt(INT),
        **_columns(_opt(TEXT), "camera", "captured", "software"),
        "colours": _opt("typeof({c}) = 'blob' AND length({c}) IN (0, 17)"),
    },
    "lists": {"name": TEXT, "kind": KIND, "description": TEXT, "created": NUM,
              "recoloured": "{c} IN ('count', 'ignore')"},
    "entries": {
        "list_id": INT, "sha256": _opt(SHA256), "label": TEXT, "source": TEXT, "added": NUM,
        "last_hit": _opt(NUM), **_columns(INT, "flat", "enabled", "hits"),
        **_columns(_opt(INT), "dhash", "phash", "canon_version"),
        "pdq": _opt(PDQ), "pdq_quality": _opt(INT),
    },
    "entry_regions": {"entry_id": INT, "region": TEXT, **_columns(INT, "dhash", "phash")},
    "entry_grids": {"grid": "typeof({c}) = 'blob' AND length({c}) = 256"},
    "entry_colours": {"colours": "typeof({c}) = 'blob' AND length({c}) = 17"},
    "actions": {
        "kind": TEXT, "state": TEXT, "src_root": PATH, "src_rel": PATH, "sha256": SHA256,
        "verdict": TEXT, "evidence": TEXT, "rule": TEXT, "error": _opt(TEXT), "created": NUM,
        "finished": _opt(NUM), "reverses": _opt(INT), "batch_id": _opt(INT),
        **_columns(_opt(PATH), "dst_root", "dst_rel", "tmp_name"),
        **_columns(INT, "device", "inode", "size", "mtime_ns", "atime_ns", "uid", "gid", "mode"),
    },
    "batches": {"command": TEXT, "started": NUM, "finished": _opt(NUM)},
    "decisions": {"kind": TEXT, "sha256": SHA256, "other": TEXT, "paths": TEXT, "created": NUM},
    "counters": {"name": TEXT, "value": INT},
    "watches": {"path": PATH, "indexed": NUM},
}  # fmt: skip


def _utf8(value: bytes | None) -> bool:
    try:
        (value or b"").decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _hex64(value: bytes | None) -> bool:
    return value is not None and len(value) == 64 and HEX.issuperset(value)


def _quick(rule: str) -> str:
    """The rule in SQL alone: types and lengths, not UTF-8 or hex digits (4 times faster)."""
    rule = rule.replace(" AND iw_utf8(CAST({c} AS BLOB))", "")
    return rule.replace("iw_hex64(CAST({c} AS BLOB))", "length(CAST({c} AS BLOB)) = 64")


def value_problems(
    db: sqlite3.Connection, thorough: bool = True, rows: dict[str, str] | None = None
) -> list[str]:
    """One line per damaged row (a few per table), naming its columns; one scan per table.

    With ``rows`` (table → SQL condition), only those tables, and in each the rows meeting the
    condition. The quick variant costs about 0.5 s per million files, the thorough one 4 s.
    """
    db.create_function("iw_utf8", 1, _utf8, deterministic=True)
    db.create_function("iw_hex64", 1, _hex64, deterministic=True)
    problems = []
    for table, rules in RULES.items():
        if rows is not None and table not in rows:
            continue
        only = f"({rows[table]}) AND " if rows is not None else ""
        present = {row[1] for row in db.execute(f'PRAGMA table_xinfo("{table}")')}
        checked = [
            (c, (rule if thorough else _quick(rule)).format(c=f'"{c}"'))
            for c, rule in rules.items()
            if c in present
        ]
        if not checked:
            continue
        flags = ", ".join(f"coalesce(({sql}), 0)" for _, sql in checked)
        wrong = " OR ".join(f"NOT coalesce(({sql}), 0)" for _, sql in checked)
        bad = db.execute(f'SELECT rowid, {flags} FROM "{table}" WHERE {only}({wrong})').fetchall()
        for row in bad[:SHOWN_PER_TABLE]:
            names = [c for (c, _), ok in zip(checked, row[1:], strict=True) if not ok]
            problems.append(f"{table} row {row[0]}: damaged value in {', '.join(names)}")
        if len(bad) > SHOWN_PER_TABLE:
            problems.append(f"{table}: {len(bad) - SHOWN_PER_TABLE} more damaged row(s)")
    return problems


# -- the whole check ---------------------------------------------------------------------------


def _structure(db: sqlite3.Connection, thorough: bool) -> list[str]:
    pragma = "integrity_check" if thorough else "quick_check"
    rows = [str(r[0]) for r in db.execute(f"PRAGMA {pragma}").fetchall()]
    return [] if rows == ["ok"] else [f"{pragma}: {line}" for line in rows]


def _foreign_keys(db: sqlite3.Connection) -> list[str]:
    return [
        f"{table} row {rowid}: refers to a missing {parent} row"
        for table, rowid, parent, _ in db.execute("PRAGMA foreign_key_check").fetchall()
    ]


def _schema(db: sqlite3.Connection) -> list[str]:
    version, problems = migration_problems(db)
    return problems or shape_problems(db, version)


Step = tuple[str, Callable[[sqlite3.Connection], list[str]]]


def _run(db: sqlite3.Connection, steps: list[Step]) -> list[str]:
    """Every step's problems; a step that cannot read what it checks is a problem too."""
    problems: list[str] = []
    for name, step in steps:
        try:
            problems += step(db)
        except (sqlite3.Error, UnicodeDecodeError) as exc:
            problems.append(f"{name}: cannot be read: {damage(exc) or exc}")
    return problems


def check(db: sqlite3.Connection, thorough: bool) -> list[str]:
    """Every problem found, one line each; [] for a sound database.

    Each step runs even when an earlier one failed, so that the report is as whole as can be.
    """
    steps: list[Step] = [
        ("structure", lambda d: _structure(d, thorough)),
        ("schema", _schema),
        ("foreign keys", _foreign_keys),
        ("values", lambda d: value_problems(d, thorough)),
    ]
    return _run(db, steps)


# -- what the daemon checks before it is ready ---------------------------------------------------

# The rows read before the daemon is ready: the actions recovery finishes (and those they
# reverse), and the lists, entries and counters the list index loads (a few thousand rows,
# usually). The library's rows are left to the background check: the index loads them from
# its snapshot, and only integers (``Store.library_hashes``).
INTENDED = "state = 'intended'"
STARTUP_ROWS = {
    "actions": f"{INTENDED} OR id IN (SELECT reverses FROM actions WHERE {INTENDED})",
    "lists": "1", "entries": "1", "entry_regions": "1", "counters": "1",
}  # fmt: skip


def _edges(db: sqlite3.Connection) -> list[str]:
    """Read every table's first and last row: its root page and both edges of its tree."""
    query = "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
    for (table,) in db.execute(query).fetchall():
        for order in ("ASC", "DESC"):
            db.execute(f'SELECT * FROM "{table}" ORDER BY rowid {order} LIMIT 1').fetchall()
    return []


def startup_check(db: sqlite3.Connection) -> list[str]:
    """What the daemon checks before it acts: in milliseconds, whatever the library's size.

    The migrations and the tables' shape are checked by every open of the store already.
    """
    steps: list[Step] = [
        ("tables", _edges),
        ("values", lambda d: value_problems(d, thorough=False, rows=STARTUP_ROWS)),
    ]
    return _run(db, steps)
