"""Duplicate grouping on arrays gives exactly the groups the former per-file search gave."""

from __future__ import annotations

import random
from pathlib import Path
from unittest.mock import patch

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imagewatchd import hashjoin
from imagewatchd.dupes import Among, DupeGroup, components, duplicate_groups, ordered_group
from imagewatchd.hashindex import HammingIndex, hamming
from imagewatchd.hashjoin import near_pairs
from imagewatchd.match import Matcher
from imagewatchd.models import FileStat, Fingerprint, Role, Thresholds
from imagewatchd.rows import FileRow
from imagewatchd.store import Store


def reference_groups(matcher: Matcher, rows: list[FileRow] | None = None) -> list[DupeGroup]:
    """The implementation before issue 9: one index search and one SQL query per file."""
    store = matcher.store
    rows = list(store.library_files() if rows is None else rows)
    parent: dict[int, int] = {}

    def find(key: int) -> int:
        root = parent.setdefault(key, key)
        while root != parent[root]:
            root = parent[root]
        return root

    def union(a: int, b: int) -> None:
        parent[find(a)] = find(b)

    for row in rows:
        if row.sha256 is None or row.dhash is None or row.phash is None:
            continue
        for other in store.files_by_sha256(row.sha256, row.role):
            union(row.id, other.id)
        if not row.flat:
            t = matcher.thresholds
            for key, _, _ in matcher.library.search(row.dhash, row.phash, t.dhash, t.phash):
                union(row.id, key)
    members: dict[int, list[int]] = {}
    for key in list(parent):
        members.setdefault(find(key), []).append(key)
    groups = []
    for ids in members.values():
        if len(ids) > 1:
            found = store.files_by_id(ids)
            groups.append(ordered_group(list(found.values()), {}))
    groups.sort(key=lambda g: g.best.path)
    return groups


def flipped(rng: random.Random, value: int, most: int) -> int:
    for bit in rng.sample(range(64), rng.randint(0, most)):
        value ^= 1 << bit
    return value


def random_store(path: Path, seed: int) -> None:
    """Pictures and their exact and near copies, flat ones, unreadable ones, uploads."""
    rng = random.Random(seed)
    bases = [(rng.getrandbits(64), rng.getrandbits(64), f"{n:064x}") for n in range(8)]
    with Store(path) as store:
        for n in range(rng.randint(0, 60)):
            dhash, phash, sha = rng.choice(bases)
            kind = rng.random()
            if kind < 0.5:
                dhash, phash = flipped(rng, dhash, 8), flipped(rng, phash, 6)
                sha = f"{rng.getrandbits(64):064x}"
            stat = FileStat(1, n, rng.randint(1, 5) * 100, n)
            role = Role.INCOMING if rng.random() < 0.15 else Role.LIBRARY
            where = f"/lib/{rng.randint(0, 3)}/{n}.jpg"
            if rng.random() < 0.05:
                store.save_file_error(where, stat, role, "broken", 1.0)
                continue
            size = rng.choice([100, 200])
            fp = Fingerprint(sha, dhash, phash, size, size, "JPEG", rng.random() < 0.1)
            store.save_file(where, stat, role, fp, 1.0)


def shape(groups: list[DupeGroup]) -> list[tuple[int, ...]]:
    return [tuple(row.id for row in group.files) for group in groups]


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32), dhash=st.integers(0, 12), phash=st.integers(0, 10))
def test_groups_are_the_per_file_searchs_groups(
    tmp_path_factory: pytest.TempPathFactory, seed: int, dhash: int, phash: int
) -> None:
    db = tmp_path_factory.mktemp("db") / "t.db"
    random_store(db, seed)
    with Store(db) as store:
        matcher = Matcher.load(store, Thresholds(dhash, phash))
        assert shape(duplicate_groups(matcher)) == shape(reference_groups(matcher))
        some = [r for r in store.library_files() if random.Random(seed).random() < 0.3]
        assert shape(duplicate_groups(matcher, some)) == shape(reference_groups(matcher, some))


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32), dhash=st.integers(0, 20), phash=st.integers(0, 20),
    probing=st.booleans(),
)  # fmt: skip
def test_near_pairs_are_every_pair_within_both_thresholds(
    seed: int, dhash: int, phash: int, probing: bool
) -> None:
    """Against brute force, with rows in main and in the recent buffer, and removed keys;
    by probing the chunk arrays, or by comparing all pairs (small or loose joins)."""
    if probing:
        dhash, phash = min(dhash, 9), min(phash, 9)
    rng = random.Random(seed)
    bases = [(rng.getrandbits(64), rng.getrandbits(64)) for _ in range(5)]
    entries = {}
    for key in range(rng.randint(0, 300)):
        d, p = rng.choice(bases)
        entries[key] = (flipped(rng, d, 12), flipped(rng, p, 12))
    index = HammingIndex()
    keys = list(entries)
    half = len(keys) // 2
    index.add_many(
        keys[:half], [entries[k][0] for k in keys[:half]], [entries[k][1] for k in keys[:half]]
    )
    for key in keys[half:]:
        index.add(key, *entries[key])
    for key in rng.sample(keys, len(keys) // 5):
        index.remove(key)
        del entries[key]
    expected = sorted(
        (a, b)
        for a in entries
        for b in entries
        if a < b
        and hamming(entries[a][0], entries[b][0]) <= dhash
        and hamming(entries[a][1], entries[b][1]) <= phash
    )
    with patch.object(hashjoin, "PROBE_COST", 0 if probing else 1 << 30):
        first, second = near_pairs(index, dhash, phash)
    found = sorted(
        (min(a, b), max(a, b)) for a, b in zip(first.tolist(), second.tolist(), strict=True)
    )
    assert found == expected


def test_components_join_chains_and_keep_apart_the_rest() -> None:
    first = np.array([10, 30, 50, 70, 90], np.int64)
    second = np.array([20, 40, 40, 60, 90], np.int64)
    nodes, labels = components(first, second)
    groups: dict[int, set[int]] = {}
    for node, label in zip(nodes.tolist(), labels.tolist(), strict=True):
        groups.setdefault(label, set()).add(node)
    assert sorted(map(sorted, groups.values())) == [[10, 20], [30, 40, 50], [60, 70], [90]]


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32), roots=st.sets(st.sampled_from(["/lib", "/lib/0", "/lib/2", "/"]))
)
def test_the_files_under_roots_read_column_wise_are_the_rows_under_them(
    tmp_path_factory: pytest.TempPathFactory, seed: int, roots: set[str]
) -> None:
    """``scan``'s grouping: the library files under the scanned roots, as arrays, give the
    groups the per-row selection gave."""
    db = tmp_path_factory.mktemp("db") / "t.db"
    random_store(db, seed)
    with Store(db) as store:
        matcher = Matcher.load(store, Thresholds(8, 6))
        under = [
            row for row in store.library_files()
            if any(Path(row.path).is_relative_to(root) for root in roots)
        ]  # fmt: skip
        among = Among.under(store, [Path(root) for root in roots])
        expected = Among.of_rows(under)
        assert among.ids.tolist() == sorted(expected.ids.tolist())
        assert among.searched.tolist() == sorted(expected.searched.tolist())
        assert shape(duplicate_groups(matcher, among)) == shape(duplicate_groups(matcher, under))
