"""What the review page shows of groups: the keeper's reason, distances, filters and pages."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime

from imagewatchd.dupes import DupeGroup, ordered_group
from imagewatchd.models import FileStat, Role
from imagewatchd.provenance import Provenance
from imagewatchd.review.groups import Filter, distance, keep_reason, page, parse_day, view
from imagewatchd.rows import FileRow


def _row(
    file_id: int, path: str, size: int = 1000, pixels: tuple[int, int] = (800, 600),
    day: date = date(2026, 1, 2), sha256: str | None = None, dhash: int = 0,
) -> FileRow:  # fmt: skip
    mtime = int(datetime(day.year, day.month, day.day, 12).timestamp() * 1e9)
    return FileRow(
        file_id, path, FileStat(1, file_id, size, mtime), Role.LIBRARY,
        sha256 or f"{file_id:064x}", dhash, 0, *pixels, "JPEG", False, 1, None, 0.0, 0.0,
    )  # fmt: skip


def test_the_keepers_reason_is_the_rule_that_put_it_first() -> None:
    big, small = _row(1, "/a/big.jpg"), _row(2, "/a/small.jpg", pixels=(400, 300))
    assert keep_reason(ordered_group([small, big], {})) == "pixels: 800x600 over 400x300"
    heavy, light = _row(3, "/a/heavy.jpg", size=2000), _row(4, "/a/light.jpg")
    assert keep_reason(ordered_group([light, heavy], {})) == "size: 2000 bytes over 1000"
    kept = ordered_group([small, big], {small.sha256 or "": 7})
    assert kept.best is small and keep_reason(kept) == "kept by decision 7"
    assert kept.reason_of(big) == "decision 7 keeps another copy"
    twin = _row(5, "/a/bog.jpg")
    assert keep_reason(ordered_group([twin, big], {})) == "path: first by name"


def test_distance_to_the_keeper() -> None:
    keeper = _row(1, "/a/1.jpg", dhash=0b1011)
    assert distance(keeper, keeper) == "keeper"
    assert distance(_row(2, "/a/2.jpg", sha256=keeper.sha256), keeper) == "identical bytes"
    assert distance(_row(3, "/a/3.jpg", dhash=0b0001), keeper) == "dHash 2, pHash 0"


def test_filters_by_folder_prefix_and_by_day_and_pages_clamp() -> None:
    groups = [
        DupeGroup((_row(2 * i, f"/lib/{i % 3}/a{i}.jpg", day=date(2026, 1, 1 + i % 5)),
                   _row(2 * i + 1, f"/elsewhere/b{i}.jpg", day=date(2026, 1, 1 + i % 5))))
        for i in range(60)
    ]  # fmt: skip
    everything = page(groups, Filter(), 1)
    assert (everything.total, everything.pages, len(everything.groups)) == (60, 3, 25)
    assert len(page(groups, Filter(), 3).groups) == 10
    assert page(groups, Filter(), 99).number == 3 and page(groups, Filter(), -1).number == 1
    in_folder = page(groups, Filter(folder="/lib/1/"), 1)
    assert in_folder.total == 20
    assert all(g.files[0].name.startswith("/lib/1/") for g in in_folder.groups)
    one_day = Filter(since=date(2026, 1, 3), until=date(2026, 1, 3))
    assert page(groups, one_day, 1).total == 12
    assert page(groups, Filter(since=date(2026, 1, 4)), 1).total == 24
    assert page(groups, Filter(folder="/nowhere/"), 1).groups == ()
    assert parse_day("2026-01-03") == date(2026, 1, 3)
    assert parse_day("yesterday") is None and parse_day("") is None


def test_a_file_shows_when_it_was_taken_and_the_date_filter_uses_it() -> None:
    taken = replace(
        _row(1, "/a/IMG_1.jpg", day=date(2026, 1, 2)),
        provenance=Provenance(camera="Canon EOS 80D", captured="2019-05-01T12:34:56"),
    )
    copy = _row(2, "/a/copy.jpg", pixels=(400, 300), day=date(2026, 1, 2))
    group = ordered_group([copy, taken], {})
    files = view(group).files
    assert (files[0].captured, files[0].modified[:10]) == ("2019-05-01 12:34", "2026-01-02")
    assert files[1].captured == ""
    assert Filter(since=date(2019, 5, 1), until=date(2019, 5, 1)).selects(group)
    assert not Filter(since=date(2019, 5, 2), until=date(2025, 12, 31)).selects(group)
