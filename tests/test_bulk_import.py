"""Bulk import: hash lists read in bulk (hashlines) give what the line-by-line reading gives,
hostile lines included; many new entries find the stored incoming files as a few do; the
whole `known import` command prints what it always did."""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from imagewatchd import hashlists
from imagewatchd.hashjoin import cross_pairs
from imagewatchd.models import FileStat, Fingerprint, Role
from imagewatchd.rows import NewEntry
from imagewatchd.store import Store
from tests.conftest import Run

D, P = "0123456789abcdef", "fedcba9876543210"
PDQ = "a5" * 32
HOSTILE = (
    f"{D}{P}\n"  # 1: a near entry
    "\n"  # 2: blank
    f"{D}{P} a label \r\n"  # 3: CRLF, a label
    f"{D}{P[:-1]}\n"  # 4: 31 digits
    f"{D}{P}0\n"  # 5: 33 digits
    f"{D}{P[:-1]}g\n"  # 6: not hex
    f"{D}\0{P[1:]}\n"  # 7: a NUL
    f"# {D}{P}\n"  # 8: a comment
    f"   {D.upper()}{P} indented\n"  # 9: leading blanks, capitals
    f"{D}\n"  # 10: one 64-bit hash alone
    f"{'ab' * 32} sha\n"  # 11: a sha256
    f"{D}{P}\tlabel\n"  # 12: a tab, not a blank, after the hash
    f"sha256:{'cd' * 32}\n"  # 13: a prefixed sha256
    f"{D}{P} é ünïcode\n"  # 14
)


def _slowly(parse: Callable[[str, str], hashlists.Parsed], text: str) -> hashlists.Parsed:
    """The same file read one line at a time (``str.splitlines``), as before the bulk path."""
    one = {hashlists.parse_hex: hashlists._hex_entry, hashlists.parse_pdq: hashlists._pdq_entry}
    return hashlists._parse_lines(text, lambda line: one[parse](line, "s"))  # type: ignore[index]


def _same(parse: Callable[[str, str], hashlists.Parsed], text: str) -> hashlists.Parsed:
    bulk, slow = parse(text, "s"), _slowly(parse, text)
    assert list(bulk.entries) == list(slow.entries)
    assert bulk.problems == slow.problems
    return bulk


def test_hostile_hex_lines_get_the_errors_they_always_got() -> None:
    parsed = _same(hashlists.parse_hex, HOSTILE)
    assert [e.label for e in parsed.entries] == ["", "a label", "indented", "sha", "", "é ünïcode"]
    assert [p.split(":")[0] for p in parsed.problems] == [
        "line 4", "line 5", "line 6", "line 7", "line 10", "line 12",
    ]  # fmt: skip
    assert "got 31" in parsed.problems[0] and "not a hex hash" in parsed.problems[2]


@pytest.mark.parametrize("breaks", ["\r", "\x0c", "\u2028", "\x85"])
def test_other_line_breaks_are_counted_as_splitlines_counts_them(breaks: str) -> None:
    text = HOSTILE.replace("\n# ", f"\n{breaks}# ", 1)
    parsed = _same(hashlists.parse_hex, text)
    assert parsed.problems[-1].startswith("line 13:")  # one line more from line 8 on


def test_hostile_pdq_lines_too() -> None:
    text = (
        f"{PDQ}\n{PDQ},80,cat\r\n{PDQ} 80 dog \n{PDQ} a label\n{PDQ},101,x\n{PDQ[:-1]}\n"
        f"\n{PDQ}0\n{PDQ[:-1]}z,1\n{PDQ}\0\n  {PDQ.upper()} 5\n{PDQ},,empty\n{PDQ}\t7\n"
    )
    parsed = _same(hashlists.parse_pdq, text)
    assert [(e.pdq_quality, e.label) for e in parsed.entries] == [
        (None, ""), (80, "cat"), (80, "dog"), (None, "a label"), (5, ""), (None, "empty"),
    ]  # fmt: skip
    assert [p.split(":")[0] for p in parsed.problems] == [
        "line 5", "line 6", "line 8", "line 9", "line 10", "line 13",
    ]  # fmt: skip


lines = st.lists(
    st.one_of(
        st.sampled_from([f"{D}{P}", f"{D}{P} x", PDQ, f"{PDQ},3,y", f"{PDQ} 7 z", "", "#", "\0"]),
        st.text(st.sampled_from(list("0123456789abcdefABXg ,#\t\r\0é")), max_size=70),
    ),
    max_size=12,
)


@settings(max_examples=150, deadline=None)
@given(lines, st.sampled_from(["\n", "\r\n"]))
@example([f"{D}{P}", "\r"], "\n")
def test_any_lines_read_in_bulk_as_one_at_a_time(rows: list[str], end: str) -> None:
    text = end.join(rows)
    _same(hashlists.parse_hex, text)
    _same(hashlists.parse_pdq, text)


def test_csv_rows_of_any_shape_keep_their_errors() -> None:
    text = (
        "dhash,phash,label,enabled,pdq_quality,pdq\n"
        f"{D},{P},plain,,,\n"
        f"{D},{P},off,0,,\n"
        f" {D},{P},blank before,yes,,\n"
        f"{D},,half,,,\n"
        f"{D},{P},short\n"
        "\n"
        f"{D},{P},quality,,007,{PDQ}\n"
        f"{D},{P},bad quality,,101,{PDQ}\n"
        f"{D}0,{P},long,,,\n"
        f'{D},{P},"quoted, with a comma",,,,extra\n'
    )
    parsed = hashlists.parse_csv(text, "s")
    assert [(e.label, e.enabled, e.pdq_quality) for e in parsed.entries] == [
        ("plain", True, None), ("off", False, None), ("blank before", True, None),
        ("short", True, None), ("quality", True, 7), ("quoted, with a comma", True, None),
    ]  # fmt: skip
    assert [p.split(":")[0] for p in parsed.problems] == ["line 5", "line 9", "line 10"]
    assert {e.dhash for e in parsed.entries} == {int(D, 16)}


def test_cross_pairs_are_every_pair_within_both_thresholds() -> None:
    rng = np.random.default_rng(7)
    first = rng.integers(0, 2**64, (2, 400), dtype=np.uint64)
    second = rng.integers(0, 2**64, (2, 3000), dtype=np.uint64)
    for n in range(300):  # near copies: n % 9 bits off in dHash, n % 6 in pHash
        second[0, n] = first[0, n] ^ np.uint64((1 << (n % 9)) - 1)
        second[1, n] = first[1, n] ^ np.uint64((1 << (n % 6)) - 1)
    keys = np.arange(400, dtype=np.int64) * 3, np.arange(3000, dtype=np.int64) + 10**6
    for a, b in (((keys[0], *first), (keys[1], *second)), ((keys[0][:9], *first[:, :9]),
                                                           (keys[1], *second))):  # fmt: skip
        close = (np.bitwise_count(a[1][:, None] ^ b[1][None, :]) <= 6) & (
            np.bitwise_count(a[2][:, None] ^ b[2][None, :]) <= 4
        )
        rows, cols = np.nonzero(close)
        want = sorted(zip(a[0][rows].tolist(), b[0][cols].tolist(), strict=True))
        got = cross_pairs(a, b, 6, 4)
        assert sorted(zip(*(side.tolist() for side in got), strict=True)) == want
        flipped = cross_pairs(b, a, 6, 4)
        assert sorted(zip(*(side.tolist() for side in flipped[::-1]), strict=True)) == want
        assert len(want) > 0


def test_a_large_import_reaches_the_stored_incoming_files(
    cli: Callable[..., Run], tmp_path: Path
) -> None:
    """More entries than are compared one at a time: joined as arrays, the same files found."""
    rng = random.Random(3)
    pictures = [(rng.getrandbits(64), rng.getrandbits(64)) for _ in range(6)]
    with Store(tmp_path / "state" / "imagewatchd.db") as store:
        for n, (d, p) in enumerate(pictures):
            fp = Fingerprint(f"{n:064x}", d, p, 8, 8, "PNG", False)
            role = Role.LIBRARY if n == 5 else Role.INCOMING
            store.save_file(f"/up/{n}.png", FileStat(1, n + 1, 1, 1), role, fp, 1.0)
    near = [f"{d ^ 0b111:016x}{p ^ 0b11:016x} near {n}" for n, (d, p) in enumerate(pictures)]
    lines = [f"{rng.getrandbits(64):016x}{rng.getrandbits(64):016x}" for _ in range(300)]
    lines[100:100] = [*near[:2], near[5], f"{3:064x} exact", *near[2:3]]
    (tmp_path / "big.txt").write_text("\n".join(lines) + "\n")
    out = cli(
        "known", "import", "--create", "--list", "big", str(tmp_path / "big.txt"), check=0
    ).out
    assert "big: imported 305, already listed 0, invalid 0\n" in out
    ids = ", ".join(str(n) for n in range(1, 21))
    assert f"entry IDs: {ids}, ... (305 in all)\n" in out
    assert "stored incoming files matched: 4;" in out  # 0, 1, 2 near, 3 exact; 4 far, 5 library
    again = cli("known", "import", "--list", "big", str(tmp_path / "big.txt"), check=0).out
    assert again.startswith("big: imported 0, already listed 305, invalid 0\n")
    with Store(tmp_path / "state" / "imagewatchd.db") as store:
        added, skipped = store.add_entries(store.lists()[0].id, [NewEntry(None, 1, 2)] * 3, 1.0)
    assert (len(added), skipped) == (1, 2)
