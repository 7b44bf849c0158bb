"""Hash list files: hex lines and CSV parse, round-trip, and name their bad lines."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from imagewatchd import hashlists
from imagewatchd.models import ListKind
from imagewatchd.rows import EntryRow

hashes = st.integers(min_value=0, max_value=2**64 - 1)
sha256s = st.text("0123456789abcdef", min_size=64, max_size=64)
labels = st.text(st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")), max_size=15)


def row(index: int, sha: str | None, pair: tuple[int, int] | None, label: str) -> EntryRow:
    return EntryRow(
        id=index, list_name="l", list_kind=ListKind.BLOCK, sha256=sha,
        dhash=pair[0] if pair else None, phash=pair[1] if pair else None, flat=False,
        label=label, source="s", added=1.5, enabled=True, hits=0, last_hit=None,
    )  # fmt: skip


entries = st.lists(
    st.tuples(st.one_of(st.none(), sha256s), st.one_of(st.none(), st.tuples(hashes, hashes)),
              labels).filter(lambda t: t[0] is not None or t[1] is not None),
    max_size=10,
)  # fmt: skip


@given(entries)
def test_csv_round_trips_everything(
    items: list[tuple[str | None, tuple[int, int] | None, str]],
) -> None:
    rows = [row(i, *item) for i, item in enumerate(items)]
    text = hashlists.format_csv(rows)
    assert hashlists.detect_format(text) == "csv"
    parsed = hashlists.parse_csv(text, "import")
    assert parsed.problems == []
    assert [(e.sha256, e.dhash, e.phash, e.label, e.source) for e in parsed.entries] == [
        (r.sha256, r.dhash, r.phash, r.label, r.source) for r in rows
    ]


@given(entries)
def test_hex_round_trips_the_matching_hashes(
    items: list[tuple[str | None, tuple[int, int] | None, str]],
) -> None:
    rows = [row(i, *item) for i, item in enumerate(items)]
    parsed = hashlists.parse_hex(hashlists.format_hex(rows), "import")
    assert parsed.problems == []
    for entry, original in zip(parsed.entries, rows, strict=True):
        if original.dhash is not None:
            assert (entry.dhash, entry.phash, entry.sha256) == (
                original.dhash,
                original.phash,
                None,
            )
        else:
            assert (entry.sha256, entry.dhash) == (original.sha256, None)
        assert entry.label == original.label.strip()


def test_hex_lines_and_their_errors() -> None:
    text = "\n".join([
        "# a comment",
        "",
        "A" * 64 + " banned cat",
        "sha256:" + "b" * 64,
        "0123456789abcdef" * 2 + "  pair",
        "0123456789abcdef",
        "xyz",
        "abc",
    ])  # fmt: skip
    parsed = hashlists.parse_hex(text, "src")
    assert [e.sha256 for e in parsed.entries] == ["a" * 64, "b" * 64, None]
    assert parsed.entries[0].label == "banned cat"
    assert parsed.entries[2].dhash == 0x0123456789ABCDEF
    assert parsed.problems[0].startswith("line 6: a single 64-bit hash is not enough evidence")
    assert parsed.problems[1].startswith("line 7: not a hex hash")
    assert parsed.problems[2].startswith("line 8: expected 64 hex digits")


def test_csv_errors_name_line_and_column() -> None:
    assert (
        hashlists.parse_csv("md5,label\nabc,x\n", "s")
        .problems[0]
        .startswith("line 1: unknown column(s) md5")
    )
    text = "sha256,dhash,phash\n" + "a" * 64 + ",,\n,00000000000000ff,\n,zz,00\n"
    parsed = hashlists.parse_csv(text, "s")
    assert len(parsed.entries) == 1
    assert parsed.problems == [
        "line 3: dhash and phash must be given together",
        "line 4: dhash must be 16 hex digits, got 'zz'",
    ]


def test_imported_flat_hashes_never_near_match() -> None:
    parsed = hashlists.parse_hex("0" * 16 + "8" + "0" * 15, "s")
    assert parsed.entries[0].flat
