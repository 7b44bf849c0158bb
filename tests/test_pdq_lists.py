"""PDQ in the store, in hash lists and in matching: migration 6, PDQ-only entries, the gate."""

from __future__ import annotations

import io
import json
import re
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from imagewatchd import hashlists
from imagewatchd.fingerprint import fingerprint_bytes
from imagewatchd.match import Matcher
from imagewatchd.models import (
    CANON_VERSION,
    FileStat,
    Fingerprint,
    ListKind,
    Role,
    Thresholds,
    VerdictKind,
)
from imagewatchd.rows import EntryRow, NewEntry
from imagewatchd.store import Store
from tests.conftest import MakeImage, Run, database_at_version, photo

THRESHOLDS = Thresholds(dhash=6, phash=4, pdq=31, pdq_quality=50, pdq_query_quality=50)
pdqs = st.integers(min_value=0, max_value=2**256 - 1)
qualities = st.one_of(st.none(), st.integers(0, 100))
labels = st.text(st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp", "Zs")), max_size=12)


def fp_of(img: Image.Image, fmt: str = "PNG", **params: object) -> Fingerprint:
    out = io.BytesIO()
    img.save(out, fmt, **params)
    return fingerprint_bytes(out.getvalue())


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(tmp_path / "t.db") as s:
        yield s


def pdq_only(fp: Fingerprint, quality: int | None = None, label: str = "") -> NewEntry:
    q = fp.pdq_quality if quality is None else quality
    return NewEntry(None, None, None, label=label, pdq=fp.pdq, pdq_quality=q)


# -- store -------------------------------------------------------------------------------------


def test_files_keep_their_pdq_and_old_hashing_is_redone(store: Store) -> None:
    fp = fp_of(photo(1))
    stat = FileStat(1, 2, 3, 4)
    store.save_file("/lib/a.png", stat, Role.LIBRARY, fp, 1.0)
    row = store.get_file("/lib/a.png")
    assert row is not None and row.fingerprint() == fp
    assert (row.pdq, row.pdq_quality) == (fp.pdq, fp.pdq_quality) and row.unchanged(stat)
    old = Fingerprint(fp.sha256, fp.dhash, fp.phash, 640, 480, "PNG", False, canon_version=1)
    store.save_file("/lib/a.png", stat, Role.LIBRARY, old, 2.0)
    row = store.get_file("/lib/a.png")
    assert row is not None and row.pdq is None
    assert not row.unchanged(stat), "a file hashed before PDQ existed is fingerprinted again"


def _database_at_version_5(path: Path) -> None:
    db = database_at_version(path, 5)
    db.execute("INSERT INTO lists VALUES (1, 'banned', 'block', '', 1)")
    db.execute(
        "INSERT INTO entries (id, list_id, sha256, dhash, phash, label, added, hits)"
        " VALUES (5, 1, NULL, 7, -3, 'old pair', 1, 4), (6, 1, ?, NULL, NULL, 'exact', 1, 0)",
        ("ab" * 32,),
    )
    db.close()


def test_migration_6_keeps_entries_and_allows_pdq_only_ones(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    _database_at_version_5(path)
    with Store(path) as store:
        assert store.schema_version() >= 6
        old = store.entries("banned")
        assert [(e.id, e.dhash, e.phash, e.sha256, e.label, e.hits, e.pdq) for e in old] == [
            (5, 7, 2**64 - 3, None, "old pair", 4, None),
            (6, None, None, "ab" * 32, "exact", 0, None),
        ]
        before = store.entry_counters()
        (new,), _ = store.add_entries(1, [NewEntry(None, None, None, pdq=2**255 + 1)], 2.0)
        assert store.entry_counters()[0] == before[0] + 1, "the insert trigger survived"
        store.set_entries_enabled([new], False)
        assert store.entry_counters()[1] == before[1] + 1, "the update trigger survived"
        assert store.entries(ids=[new])[0].pdq == 2**255 + 1
        assert store.add_entries(1, [NewEntry(None, None, None, pdq=2**255 + 1)], 3.0) == ([], 1)
        with pytest.raises(sqlite3.IntegrityError):
            store.add_entries(1, [NewEntry(None, None, None)], 3.0)
        assert store.check(thorough=True) == []


@given(st.lists(st.tuples(pdqs, qualities), min_size=1, max_size=8, unique_by=lambda t: t[0]))
def test_pdq_entries_round_trip_through_the_store(
    tmp_path_factory: pytest.TempPathFactory, items: list[tuple[int, int | None]]
) -> None:
    with Store(tmp_path_factory.mktemp("db") / "t.db") as store:
        list_id = store.create_list("l", ListKind.BLOCK, "", 1.0)
        store.add_entries(list_id, [NewEntry(None, None, None, pdq=h, pdq_quality=q)
                                    for h, q in items], 1.0)  # fmt: skip
        assert [(e.pdq, e.pdq_quality) for e in store.entries("l")] == items


# -- list files --------------------------------------------------------------------------------


def _row(index: int, pdq: int | None, quality: int | None, label: str) -> EntryRow:
    return EntryRow(
        id=index, list_name="l", list_kind=ListKind.BLOCK, sha256=None, dhash=None, phash=None,
        flat=False, label=label, source="s", added=1.0, enabled=True, hits=0, last_hit=None,
        pdq=pdq, pdq_quality=quality,
    )  # fmt: skip


@given(st.lists(st.tuples(pdqs, qualities, labels), max_size=8))
def test_pdq_and_csv_lists_round_trip(items: list[tuple[int, int | None, str]]) -> None:
    rows = [_row(i, *item) for i, item in enumerate(items)]
    expected = [(r.pdq, r.pdq_quality, r.label.strip()) for r in rows]
    parsed = hashlists.parse_pdq(hashlists.format_pdq(rows), "x")
    assert parsed.problems == []
    got = [(e.pdq, e.pdq_quality, e.label) for e in parsed.entries]
    if all(q is not None or not re.match(r"[0-9]{1,3}(\s|$)", lbl.strip()) for _, q, lbl in items):
        assert got == expected  # without a quality, a label "42 …" reads as one: documented
    parsed = hashlists.parse_csv(hashlists.format_csv(rows), "x")
    assert parsed.problems == []
    assert [(e.pdq, e.pdq_quality, e.label) for e in parsed.entries] == [
        (r.pdq, r.pdq_quality, r.label) for r in rows
    ]


def test_pdq_lines_as_teams_exchange_them() -> None:
    h = "d8f8f0cee0f4a84f0637022a078f67f0b36e2ed596621e1d33e6339c4e9c9b22"
    text = (
        f"# exported by a partner\n{h}\n{h.upper()} 87\n{h} 100 bridge photo\n"
        f"{h},100,./data/bridge-1-original.jpg\n{h} a label only\n\n"
        f"{h[:-1]} 50\n{h} 101\n{'g' * 64}\n"
    )
    parsed = hashlists.parse_pdq(text, "partner")
    assert [(e.pdq_quality, e.label) for e in parsed.entries] == [
        (None, ""), (87, ""), (100, "bridge photo"), (100, "./data/bridge-1-original.jpg"),
        (None, "a label only"),
    ]  # fmt: skip
    assert {e.pdq for e in parsed.entries} == {int(h, 16)}
    assert all(e.sha256 is None and e.dhash is None and e.source == "partner"
               for e in parsed.entries)  # fmt: skip
    assert [p.split(":")[0] for p in parsed.problems] == ["line 8", "line 9", "line 10"]
    assert "64 hex digits" in parsed.problems[0] and "0 to 100" in parsed.problems[1]


def test_csv_with_a_pdq_column_only() -> None:
    h = "ab" * 32
    parsed = hashlists.parse_csv(f"pdq,pdq_quality,label\n{h},77,x\n{h},,y\n,,z\n", "s")
    assert [(e.pdq, e.pdq_quality, e.label) for e in parsed.entries] == [
        (int(h, 16), 77, "x"), (int(h, 16), None, "y"),
    ]  # fmt: skip
    assert parsed.problems == ["line 4: a row needs a sha256, a dhash and a phash, or a pdq"]


# -- matching ----------------------------------------------------------------------------------


def _block(store: Store, entries: list[NewEntry]) -> list[int]:
    list_id = store.create_list("exchanged", ListKind.BLOCK, "", 1.0)
    return store.add_entries(list_id, entries, 1.0)[0]


def test_pdq_only_entry_matches_a_variant_and_nothing_else(store: Store) -> None:
    banned = fp_of(photo(1, (1024, 768)))
    (entry_id,) = _block(store, [pdq_only(banned, label="from a partner")])
    matcher = Matcher.load(store, THRESHOLDS)
    variant = fp_of(photo(1, (1024, 768)).resize((500, 375)), "JPEG", quality=60)
    verdict = matcher.match(variant)
    assert verdict.kind is VerdictKind.KNOWN
    (m,) = verdict.matches
    assert (m.entry_id, m.by_pdq, m.exact, m.label) == (entry_id, True, False, "from a partner")
    assert m.pdq_distance is not None and m.pdq_distance <= THRESHOLDS.pdq
    assert matcher.match(fp_of(photo(2, (1024, 768)))).kind is VerdictKind.CLEAN


def test_pdq_quality_gate_on_entries_and_queries(store: Store) -> None:
    banned = fp_of(photo(1))
    _block(store, [pdq_only(banned, quality=49)])
    assert Matcher.load(store, THRESHOLDS).match(banned).kind is VerdictKind.CLEAN
    other = fp_of(photo(3))
    _block_more(store, [pdq_only(other)])
    matcher = Matcher.load(store, THRESHOLDS)
    assert matcher.match(other).kind is VerdictKind.KNOWN
    assert other.pdq is not None
    weak = Fingerprint(
        "00" * 32, other.dhash, other.phash, 1, 1, "PNG", False, other.pdq, pdq_quality=49
    )
    assert matcher.match(weak).kind is VerdictKind.CLEAN, "a query below the floor"


def _block_more(store: Store, entries: list[NewEntry]) -> None:
    list_id = store.create_list("more", ListKind.BLOCK, "", 1.0)
    store.add_entries(list_id, entries, 1.0)


def test_pdq_entries_added_and_disabled_while_running(store: Store) -> None:
    matcher = Matcher.load(store, THRESHOLDS)
    banned = fp_of(photo(4))
    assert matcher.match(banned).kind is VerdictKind.CLEAN
    (entry_id,) = _block(store, [pdq_only(banned)])
    assert matcher.refresh_entries()
    assert matcher.match(banned).kind is VerdictKind.KNOWN
    store.set_entries_enabled([entry_id], False)
    assert matcher.refresh_entries()
    assert matcher.match(banned).kind is VerdictKind.CLEAN


def test_entries_added_from_pictures_carry_their_pdq(store: Store) -> None:
    fp = fp_of(photo(5))
    entry = NewEntry(fp.sha256, fp.dhash, fp.phash, pdq=fp.pdq, pdq_quality=fp.pdq_quality)
    _block(store, [entry])
    (m,) = Matcher.load(store, THRESHOLDS).match(fp_of(photo(5), "JPEG", quality=80)).matches
    assert not m.by_pdq and m.pdq_distance is not None
    assert CANON_VERSION >= 2


# -- the command line --------------------------------------------------------------------------


def test_pdq_list_import_check_export_and_compare(
    cli: Callable[..., Run], tmp_path: Path, make_image: MakeImage
) -> None:
    banned = make_image("banned.png", seed=7, size=(800, 600))
    copy = make_image("copy.jpg", seed=7, size=(400, 300), quality=70)
    other = make_image("other.png", seed=8)
    fp = fingerprint_bytes(banned.read_bytes())
    assert fp.pdq is not None
    listed = f"# from a partner\n{fp.pdq:064x} {fp.pdq_quality} partner-case-17\n"
    (tmp_path / "list.pdq").write_text(listed)
    out = cli("known", "import", "--create", "--list", "exchanged", "--format", "pdq",
              str(tmp_path / "list.pdq"), check=0).out  # fmt: skip
    assert "imported 1" in out
    hit = cli("check", str(copy), check=1).out.splitlines()
    assert hit[0] == f"{copy}: known"
    assert re.fullmatch(
        r"  list 'exchanged' \(block\) entry 1 'partner-case-17': PDQ distance \d+ "
        r"\(threshold 31\)", hit[1]
    ), hit  # fmt: skip
    assert cli("check", str(other), check=0).out.strip() == f"{other}: clean"
    data = json.loads(cli("check", "--json", str(copy), check=1).out)
    assert data["matches"][0]["by_pdq"] is True and data["thresholds"]["pdq"] == 31
    assert data["fingerprint"]["pdq_quality"] >= 50 and len(data["fingerprint"]["pdq"]) == 64
    (entry,) = json.loads(cli("known", "list", "--list", "exchanged", "--json", check=0).out)
    assert (entry["pdq"], entry["pdq_quality"]) == (f"{fp.pdq:064x}", fp.pdq_quality)
    listed_text = cli("known", "list", "--list", "exchanged", check=0).out
    assert f"\tpdq:{fp.pdq:064x}\tenabled\t" in listed_text
    exported = cli("known", "export", "--list", "exchanged", "--format", "pdq", check=0).out
    assert exported == f"{fp.pdq:064x} {fp.pdq_quality} partner-case-17\n"
    cli("known", "add", "--create", "--list", "mine", str(banned), check=0)
    mine = cli("known", "export", "--list", "mine", "--format", "pdq", check=0).out
    assert mine.startswith(f"{fp.pdq:064x} {fp.pdq_quality} ")
    compared = cli("compare", str(banned), str(copy), check=0).out.splitlines()
    pattern = (
        r"^  PDQ, the second as it is: distance \d+ \(threshold 31\), quality \d+ and \d+ "
        r"\(floors 40 for an entry, 20 for a picture\): within$"
    )
    assert any(re.search(pattern, line) for line in compared), compared


def test_files_fingerprinted_by_an_older_version_are_redone_by_the_next_scan(
    cli: Callable[..., Run], tmp_path: Path, make_image: MakeImage
) -> None:
    for seed in (1, 2):
        make_image(f"lib/p{seed}.jpg", seed=seed, quality=90)
    first = json.loads(cli("scan", str(tmp_path / "lib"), "--json", check=0).out)
    assert (first["new"], first["changed"]) == (2, 0)
    db = sqlite3.connect(tmp_path / "state" / "imagewatchd.db")
    with db:  # as an imagewatchd from before PDQ left them
        db.execute("UPDATE files SET canon_version = 1, pdq = NULL, pdq_quality = NULL")
    db.close()
    again = json.loads(cli("scan", str(tmp_path / "lib"), "--json", check=0).out)
    assert (again["changed"], again["unchanged"], again["duplicate_groups"]) == (2, 0, 0)
    db = sqlite3.connect(tmp_path / "state" / "imagewatchd.db")
    rows = db.execute("SELECT canon_version, length(pdq), pdq_quality FROM files").fetchall()
    db.close()
    assert rows == [(CANON_VERSION, 32, rows[0][2]), (CANON_VERSION, 32, rows[1][2])]
    third = json.loads(cli("scan", str(tmp_path / "lib"), "--json", check=0).out)
    assert third["unchanged"] == 2


def test_an_entry_with_pixels_also_matches_by_pdq_alone(store: Store) -> None:
    """The rule is dHash+pHash OR PDQ for list entries: here the pair is far, PDQ is close."""
    fp = fp_of(photo(6))
    far = NewEntry(None, fp.dhash ^ (2**64 - 1), fp.phash, pdq=fp.pdq, pdq_quality=100)
    flat = NewEntry(None, None, None, flat=True, pdq=fp.pdq, pdq_quality=100)
    far_id, _ = _block(store, [far, flat])
    (m,) = Matcher.load(store, THRESHOLDS).match(fp_of(photo(6), "JPEG", quality=80)).matches
    assert (m.entry_id, m.by_pdq) == (far_id, True), "a flat entry never near-matches"
