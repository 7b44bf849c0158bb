"""Undo against a running daemon, in process: the decision is on record before the file moves
back, and gone again if the move back fails (issue 7, #8)."""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Any

import pytest

from imagewatchd import config, fileops, journal
from imagewatchd.act import Actor
from imagewatchd.decoding.inline import InlineDecoder
from imagewatchd.fileops import FileOpsError, Location
from imagewatchd.models import FileStat, Role
from imagewatchd.store import Store
from tests.conftest import MakeImage


@pytest.fixture
def quarantined(tmp_path: Path, make_image: MakeImage) -> tuple[Store, Actor, int, Path, str]:
    """A file quarantined by the actor; (store, actor, action id, original path, sha256)."""
    uploads = tmp_path / "uploads"
    path = make_image("uploads/a.png", seed=3)
    conf = config.parse({"watches": [{"path": str(uploads), "role": "incoming"}]}, "test")
    store = Store(tmp_path / "t.db")
    actor = Actor(store, conf, tmp_path / "quarantine")
    (tmp_path / "quarantine").mkdir(mode=0o700)
    sha = fileops.sha256_of(Location(uploads, PurePosixPath("a.png")))
    moved = actor.move(
        Location(uploads, PurePosixPath("a.png")),
        Location(tmp_path / "quarantine", PurePosixPath("q1")),
        FileStat.of(path.stat()), sha, "quarantine", "{}", "test",
    )  # fmt: skip
    return store, actor, moved.action_id, path, sha


def test_undo_exempts_the_file_before_it_moves_back(
    quarantined: tuple[Store, Actor, int, Path, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    store, actor, action_id, path, sha = quarantined
    seen: list[int | None] = []
    original = fileops.move

    def move(*args: Any, **kwargs: Any) -> fileops.MoveResult:
        seen.append(store.exemption(str(path), sha))  # what a daemon would see at this instant
        return original(*args, **kwargs)

    monkeypatch.setattr(fileops, "move", move)
    back = journal.reverse(
        store, actor, action_id, force=False, role=Role.INCOMING, decoder=InlineDecoder()
    )
    assert back == path
    (undo,) = store.actions(kind="restore")
    assert seen == [undo.id]
    assert store.exemption(str(path), sha) == undo.id
    assert store.exemption(str(path), "0" * 64) is None  # other content at that place: acted on
    assert store.exemption(str(path.with_name("b.png")), sha) is None  # a copy elsewhere too
    store.close()


def test_a_failed_undo_keeps_no_exemption(
    quarantined: tuple[Store, Actor, int, Path, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    store, actor, action_id, path, sha = quarantined

    def move(src: Location, dst: Location, **kwargs: Any) -> None:
        raise FileOpsError(dst.path, "input/output error")

    monkeypatch.setattr(fileops, "move", move)
    with pytest.raises(FileOpsError):
        journal.reverse(
            store, actor, action_id, force=False, role=Role.INCOMING, decoder=InlineDecoder()
        )
    (undo,) = store.actions(kind="restore")
    assert undo.state == "failed"
    assert store.exemption(str(path), sha) is None
    quarantine = store.action(action_id)
    assert quarantine is not None
    assert quarantine.state == "done"
    store.close()
