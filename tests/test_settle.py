"""Settle rules, with an injected clock and real files: no sleeping."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from imagewatchd.models import Arrival, Candidate
from imagewatchd.settle import EMPTY_WAIT, Settler


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def settler(clock: Clock, *, closes: bool = True, quiet: float = 2.0) -> Settler:
    # the wall clock far in the past: every file looks freshly changed
    return Settler(lambda _: quiet, lambda _: closes, clock, wall=lambda: 0.0)


def candidate(path: Path, arrival: Arrival) -> Candidate:
    return Candidate(str(path), 0, arrival)


def test_close_after_write_settles_at_once(tmp_path: Path, clock: Clock) -> None:
    s = settler(clock)
    f = tmp_path / "a.jpg"
    f.write_bytes(b"x" * 10)
    assert s.offer(candidate(f, Arrival.CREATED)) is None
    assert s.offer(candidate(f, Arrival.MODIFIED)) is None
    settled = s.offer(candidate(f, Arrival.CLOSED))
    assert settled is not None
    assert settled.stat.size == 10
    assert s.pending == {}


def test_a_slow_writer_is_never_settled_mid_write(tmp_path: Path, clock: Clock) -> None:
    s = settler(clock)
    f = tmp_path / "slow.jpg"
    f.write_bytes(b"x")
    s.offer(candidate(f, Arrival.CREATED))
    s.offer(candidate(f, Arrival.MODIFIED))
    for step in range(1, 20):  # writes with long pauses, no close yet
        clock.now += 5.0
        assert s.due() == []
        with f.open("ab") as out:
            out.write(b"y")
        os.utime(f, ns=(step * 10**9, step * 10**9))
    clock.now += 5.0
    assert s.due() == []
    assert s.offer(candidate(f, Arrival.CLOSED)) is not None


def test_a_stalled_writer_is_waited_for_until_events_are_lost(tmp_path: Path, clock: Clock) -> None:
    s = settler(clock)
    f = tmp_path / "a.jpg"
    f.write_bytes(b"x")
    s.offer(candidate(f, Arrival.MODIFIED))
    clock.now += 3600  # an upload stalled for an hour is still open: never act on it
    assert s.due() == []
    s.closes_lost()  # the kernel dropped events: its close may never come
    assert [x.path for x in s.due()] == [str(f)]  # and it has been still for an hour


def test_a_write_event_delivered_after_the_loss_was_noticed_does_not_wait_for_a_lost_close(
    tmp_path: Path, clock: Clock
) -> None:
    """The loss is noticed when the kernel reports it, while events read before it may still be
    queued behind: their closes are the ones that were dropped. Until every queue has drained,
    write events are not trusted to be followed by a close (found under a loaded machine: one
    file of a 20,000-file burst waited forever)."""
    s = settler(clock)
    f = tmp_path / "a.jpg"
    f.write_bytes(b"x")
    s.closes_lost()  # noticed first...
    s.offer(candidate(f, Arrival.MODIFIED))  # ...then the write event read before the loss
    s.offer(candidate(f, Arrival.SCAN))  # the rescan after the loss finds it too
    clock.now += 2.1
    assert [x.path for x in s.due()] == [str(f)]


def test_closes_are_trusted_again_once_the_queues_have_drained(
    tmp_path: Path, clock: Clock
) -> None:
    s = settler(clock)
    s.closes_lost()
    s.closes_trusted()  # every event read before the loss has been offered
    f = tmp_path / "a.jpg"
    f.write_bytes(b"x")
    s.offer(candidate(f, Arrival.MODIFIED))
    clock.now += 3600
    assert s.due() == []  # a writer that holds it open is waited for again


@pytest.mark.parametrize("arrival", [Arrival.MOVED, Arrival.CREATED, Arrival.SCAN])
def test_arrivals_without_a_writer_settle_after_a_quiet_period(
    tmp_path: Path, clock: Clock, arrival: Arrival
) -> None:
    s = settler(clock)
    f = tmp_path / "a.jpg"
    f.write_bytes(b"abc")
    assert s.offer(candidate(f, arrival)) is None
    clock.now += 1.9
    assert s.due() == []
    assert s.next_due() == pytest.approx(1002.0)
    clock.now += 0.2
    assert [x.path for x in s.due()] == [str(f)]


def test_a_change_during_the_quiet_period_restarts_it(tmp_path: Path, clock: Clock) -> None:
    s = settler(clock)
    f = tmp_path / "a.jpg"
    f.write_bytes(b"abc")
    s.offer(candidate(f, Arrival.MOVED))
    clock.now += 2.5
    f.write_bytes(b"abcdef")  # grew: not settled, the wait starts again
    assert s.due() == []
    clock.now += 1.0
    assert s.due() == []
    clock.now += 1.5
    settled = s.due()
    assert [x.stat.size for x in settled] == [6]


def test_polling_watches_settle_modified_files_by_quiet_period(
    tmp_path: Path, clock: Clock
) -> None:
    s = settler(clock, closes=False)
    f = tmp_path / "a.jpg"
    f.write_bytes(b"abc")
    s.offer(candidate(f, Arrival.MODIFIED))
    clock.now += 2.1
    assert len(s.due()) == 1


def test_files_already_quiet_settle_at_once(tmp_path: Path, clock: Clock) -> None:
    s = Settler(lambda _: 2.0, lambda _: True, clock, wall=lambda: 2_000_000_000.0)
    f = tmp_path / "old.jpg"
    f.write_bytes(b"abc")
    os.utime(f, ns=(10**9, 10**9))
    # ctime is now, so a real rename or link is still waited for; pretend a long time passed
    assert s.offer(candidate(f, Arrival.SCAN)) is not None


def test_vanished_and_discarded_files_are_dropped(tmp_path: Path, clock: Clock) -> None:
    s = settler(clock)
    a, b = tmp_path / "d" / "a.jpg", tmp_path / "b.jpg"
    a.parent.mkdir()
    a.write_bytes(b"a")
    b.write_bytes(b"b")
    s.offer(candidate(a, Arrival.MOVED))
    s.offer(candidate(b, Arrival.MOVED))
    s.discard(str(tmp_path / "d"))
    b.unlink()
    clock.now += 10
    assert s.due() == []
    assert s.pending == {}
    assert s.offer(candidate(tmp_path / "missing.jpg", Arrival.CLOSED)) is None


def test_empty_files_wait_for_their_writer(tmp_path: Path, clock: Clock) -> None:
    s = settler(clock)
    f = tmp_path / "empty.jpg"
    f.write_bytes(b"")
    s.offer(candidate(f, Arrival.CREATED))
    clock.now += 10
    assert s.due() == []
    clock.now += EMPTY_WAIT
    assert len(s.due()) == 1


def test_symlinks_and_fifos_are_not_candidates(tmp_path: Path, clock: Clock) -> None:
    s = settler(clock)
    target = tmp_path / "t.jpg"
    target.write_bytes(b"x")
    (tmp_path / "link.jpg").symlink_to(target)
    os.mkfifo(tmp_path / "fifo.jpg")
    assert s.offer(candidate(tmp_path / "link.jpg", Arrival.CLOSED)) is None
    assert s.offer(candidate(tmp_path / "fifo.jpg", Arrival.CLOSED)) is None
