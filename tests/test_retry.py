"""The retry schedule on an injected clock: backoff, cap, due work, the copy for ``status``."""

from __future__ import annotations

from pathlib import Path

from imagewatchd.models import Arrival, Candidate, FileStat, SettledFile
from imagewatchd.retry import Retries
from imagewatchd.store import Store
from imagewatchd.watch import Gone


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def settled(path: str) -> SettledFile:
    return SettledFile(path, 0, FileStat(1, 2, 3, 4), act=True)


def test_backoff_doubles_up_to_the_cap_and_success_clears() -> None:
    clock = Clock()
    retries = Retries(clock=clock, first=5, cap=60)
    delays = [retries.later(settled("/w/a.jpg"), "no space") for _ in range(6)]
    assert delays == [5, 10, 20, 40, 60, 60]
    assert retries.later(Gone("/w/a.jpg"), "locked") == 5  # another kind of work, its own
    assert len(retries) == 2
    retries.done(settled("/w/a.jpg"))
    assert len(retries) == 1
    assert retries.later(settled("/w/a.jpg"), "no space") == 5


def test_due_work_is_offered_again_and_stays_scheduled_until_it_reports() -> None:
    clock = Clock()
    retries = Retries(clock=clock, first=5)
    retries.later(settled("/w/a.jpg"), "no space")
    assert retries.due() == []
    assert retries.summary() == "1 retries pending, next in 5 s"
    clock.now += 5
    assert retries.due() == [Candidate("/w/a.jpg", 0, Arrival.SCAN, True)]
    assert retries.due() == []  # not twice at once
    clock.now += 5
    assert len(retries.due()) == 1  # it never reported back: offered again
    retries.done(settled("/w/a.jpg"))
    assert retries.summary() == "no retries"


def test_pending_retries_are_copied_to_the_database(tmp_path: Path) -> None:
    clock = Clock()
    retries = Retries(clock=clock, wall=lambda: clock.now + 5000, first=5)
    name = "/w/caf\udce9.jpg"  # not UTF-8: kept exactly
    with Store(tmp_path / "t.db") as store:
        retries.later(settled(name), "no space")
        retries.later(settled("/w/b.jpg"), "locked")
        retries.save(store)
        rows = store.retries()
        assert [(r.path, r.attempts, r.due, r.reason) for r in rows] == [
            ("/w/b.jpg", 1, 6005.0, "locked"), (name, 1, 6005.0, "no space"),
        ]  # fmt: skip
        retries.done(settled("/w/b.jpg"))
        retries.save(store)
        assert [r.path for r in store.retries()] == [name]
