"""Restores that stay narrow: one file at one place, never every copy of its bytes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from tests.daemon_harness import Daemon, iw, sha256
from tests.test_daemon import banned, daemon, site, write

__all__ = ["banned", "daemon", "site"]  # the fixtures, shared with test_daemon


def _quarantined(daemon: Daemon) -> dict[str, int]:
    rows = json.loads(iw(daemon.db, "quarantine", "list", "--json").stdout)
    return {row["original"]: row["id"] for row in rows}


def test_a_restored_banned_picture_stays_while_its_copies_are_quarantined(
    daemon: Daemon, site: dict[str, Path], banned: Path
) -> None:
    uploads = site["uploads"]
    first = uploads / "first.jpg"
    shutil.copyfile(banned, first)  # exactly the banned picture's bytes
    assert "known list=banned" in daemon.processed(first)
    action = _quarantined(daemon)[str(first)]
    refused = iw(daemon.db, "quarantine", "restore", str(action))
    assert refused.returncode == 2
    (line,) = refused.stderr.splitlines()
    assert "exactly the banned picture of list banned entry 1" in line
    assert "--force" in line
    assert not first.exists()
    restored = iw(daemon.db, "quarantine", "restore", "--force", str(action))
    assert restored.returncode == 0, restored.stderr
    assert restored.stdout.strip() == f"action {action}: back at {first}"
    assert sha256(first) == sha256(banned)
    second = uploads / "elsewhere" / "second.jpg"
    second.parent.mkdir()
    shutil.copyfile(banned, second)  # the same bytes, uploaded again elsewhere
    assert "known list=banned" in daemon.processed(second)
    assert not second.exists()
    marker = write(uploads / "marker.png", 100, (360, 270))  # events come in order
    assert "known" in daemon.processed(marker)
    assert sha256(first) == sha256(banned)  # the restored file is not quarantined again
    acted = [line for line in daemon.log().splitlines() if f"{first}: known" in line]
    assert len([line for line in acted if "-> quarantine" in line]) == 1, acted
    lists = iw(daemon.db, "lists", "list").stdout
    assert "restored" not in lists  # nothing on an allow list: the bytes are not unbanned
    again = iw(daemon.db, "quarantine", "restore", "--force", str(action))
    assert again.returncode == 2
    assert again.stderr.strip().endswith(
        f"action {action}: already restored by action {action + 1}: the file is at {first}"
    )
    assert daemon.stop() == 0
