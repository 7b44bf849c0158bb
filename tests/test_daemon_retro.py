"""Retroactive bans: a new or re-enabled block entry reaches the files already uploaded."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

from tests.conftest import photo
from tests.daemon_harness import Daemon, iw, sha256
from tests.test_daemon import banned, config_for, daemon, site, write

__all__ = ["banned", "daemon", "site"]  # the fixtures, shared with test_daemon


def _ban(daemon: Daemon, *pictures: str | Path) -> list[str]:
    added = iw(daemon.db, "known", "add", "--list", "banned", *map(str, pictures))
    assert added.returncode == 0, added.stderr
    return added.stdout.splitlines()


def _actions(daemon: Daemon) -> list[dict[str, object]]:
    listed = iw(daemon.db, "actions", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    rows: list[dict[str, object]] = json.loads(listed.stdout)
    return rows


def test_a_new_ban_quarantines_an_earlier_upload_and_undo_puts_it_back(
    daemon: Daemon, site: dict[str, Path], tmp_path: Path
) -> None:
    upload = write(site["uploads"] / "earlier.jpg", 300, (640, 480), quality=85)
    assert "-> none" in daemon.processed(upload)  # clean when it arrived
    original = sha256(upload)
    picture = tmp_path / "to-ban.png"
    photo(300, (800, 600)).save(picture)  # the same picture, other bytes: a near match
    lines = _ban(daemon, picture)
    assert lines[1] == "entry IDs: 2"
    assert lines[2].startswith("stored incoming files matched: 1; the running daemon (PID ")
    line = daemon.wait_for(rf"{re.escape(str(upload))}: known .*-> quarantine", timeout=10)[0]
    assert "list=banned entry=2" in line
    assert line.endswith("(retroactive: entry 2)")
    assert not upload.exists()
    action = int(re.findall(r"\[action (\d+)\]", line)[0])
    (row,) = [a for a in _actions(daemon) if a["id"] == action]
    assert row["kind"] == "quarantine" and row["state"] == "done"
    assert "retroactive: entry 2" in str(row["rule"])
    undone = iw(daemon.db, "undo", str(action))
    assert undone.returncode == 0, undone.stderr
    assert sha256(upload) == original
    marker = write(site["uploads"] / "marker.png", 100, (360, 270))  # events come in order
    assert "known" in daemon.processed(marker)
    assert upload.exists()  # the undo's exemption holds
    assert daemon.stop() == 0


def test_allow_listed_restored_and_library_files_are_not_touched(
    daemon: Daemon, site: dict[str, Path], banned: Path, tmp_path: Path
) -> None:
    restored = site["uploads"] / "restored.jpg"
    shutil.copyfile(banned, restored)  # quarantined on arrival, then restored (narrowly)
    action = int(re.findall(r"\[action (\d+)\]", daemon.processed(restored))[0])
    forced = iw(daemon.db, "quarantine", "restore", "--force", str(action))
    assert forced.returncode == 0, forced.stderr
    allowed = write(site["uploads"] / "allowed.jpg", 400, (640, 480), quality=85)
    shelf = write(site["library"] / "shelf.jpg", 500, (640, 480), quality=85)
    for path in (allowed, shelf):
        assert "known" not in daemon.processed(path)
    pictures = []
    for seed in (100, 400, 500):  # the restored, the allow-listed and the library picture
        pictures.append(tmp_path / f"seed-{seed}.png")
        photo(seed, (800, 600)).save(pictures[-1])
    made = iw(daemon.db, "lists", "create", "trusted", "--kind", "allow")
    assert made.returncode == 0, made.stderr
    assert iw(daemon.db, "known", "add", "--list", "trusted", str(pictures[1])).returncode == 0
    lines = _ban(daemon, *map(str, pictures))
    assert lines[1:] == [
        "entry IDs: 3, 4, 5",
        "stored incoming files matched: 0 (and 1 allow-listed, 1 kept by a restore)",
    ]
    daemon.wait_for(r"entries 3,4,5: 2 stored incoming file\(s\) match")
    kept = daemon.wait_for(rf"{re.escape(str(restored))}: known .*retroactive")[0]
    assert kept.endswith(f"-> none (kept: undone by action {action + 1}) (retroactive: entry 3)")
    spared = daemon.wait_for(rf"{re.escape(str(allowed))}: clean .*retroactive")[0]
    assert "allowed-by=trusted -> none" in spared
    assert sha256(restored) == sha256(banned) and allowed.exists() and shelf.exists()
    assert "shelf.jpg: known" not in daemon.log()  # a ban does not sweep the library
    assert daemon.stop() == 0


def test_a_re_enabled_entry_acts_too(daemon: Daemon, site: dict[str, Path], tmp_path: Path) -> None:
    picture = tmp_path / "later.png"
    photo(600, (800, 600)).save(picture)
    lines = _ban(daemon, picture)
    assert lines[1] == "entry IDs: 2"
    assert iw(daemon.db, "known", "disable", "2").returncode == 0
    upload = write(site["uploads"] / "while-off.jpg", 600, (640, 480), quality=85)
    assert "-> none" in daemon.processed(upload)
    enabled = iw(daemon.db, "known", "enable", "2")
    assert enabled.returncode == 0, enabled.stderr
    assert enabled.stdout.splitlines()[:2] == ["enabled 1 entry", "entry IDs: 2"]
    line = daemon.wait_for(rf"{re.escape(str(upload))}: known .*-> quarantine", timeout=10)[0]
    assert line.endswith("(retroactive: entry 2)")
    assert not upload.exists()
    assert daemon.stop() == 0


def test_bans_added_or_enabled_while_no_daemon_runs_act_when_it_starts(
    tmp_path: Path, site: dict[str, Path], banned: Path
) -> None:
    d = Daemon(tmp_path, config_for(site))
    assert iw(d.db, "known", "add", "--create", "--list", "other", str(banned)).returncode == 0
    later = tmp_path / "later.png"
    photo(650, (800, 600)).save(later)
    assert iw(d.db, "known", "add", "--list", "other", str(later)).returncode == 0  # entry 2
    assert iw(d.db, "known", "disable", "2").returncode == 0  # before any daemon ever ran
    upload = write(site["uploads"] / "up.jpg", 700, (640, 480), quality=85)
    dormant = write(site["uploads"] / "dormant.jpg", 650, (640, 480), quality=85)
    d.start()
    assert "-> none" in d.processed(upload) and "-> none" in d.processed(dormant)
    assert d.stop() == 0
    picture = tmp_path / "p.png"
    photo(700, (800, 600)).save(picture)
    added = iw(d.db, "known", "add", "--list", "other", str(picture), config=d.config_path)
    assert added.returncode == 0, added.stderr
    assert added.stdout.splitlines()[-1] == (
        "stored incoming files matched: 1; no daemon is running: it acts on them when it starts "
        f"(`imagewatchd scan --act {site['uploads']}` does now)"
    )
    assert iw(d.db, "known", "enable", "2").returncode == 0
    assert upload.exists() and dormant.exists()
    d.start()  # catches up: entry 3 was added and entry 2 enabled again since it last looked
    d.wait_for(r"entries 2,3: 2 stored incoming file\(s\) match")
    for path, entry in ((upload, 3), (dormant, 2)):
        line = d.wait_for(rf"{re.escape(str(path))}: known .*-> quarantine", timeout=10)[0]
        assert line.endswith(f"(retroactive: entry {entry})")
        assert not path.exists()
    assert d.stop() == 0
    d.start()  # entries 2 and 3 are not matched again; a new one is (its batch comes after)
    other = tmp_path / "other.png"
    photo(900, (800, 600)).save(other)
    assert iw(d.db, "known", "add", "--list", "other", str(other)).returncode == 0
    d.wait_for(r"entries 4: 0 stored incoming file\(s\) match")
    assert len(re.findall(r"entries [\d,]+: \d+ stored incoming", d.log())) == 1
    assert d.stop() == 0


def test_an_imported_sha256_reaches_its_identical_upload(
    daemon: Daemon, site: dict[str, Path], tmp_path: Path
) -> None:
    upload = write(site["uploads"] / "exact.jpg", 800, (640, 480), quality=85)
    assert "-> none" in daemon.processed(upload)
    hashes = tmp_path / "partner.txt"
    hashes.write_text(f"# from a partner\n{sha256(upload)} partner-ban\n")
    imported = iw(daemon.db, "known", "import", "--list", "banned", str(hashes))
    assert imported.returncode == 0, imported.stderr
    lines = imported.stdout.splitlines()
    assert lines[0] == "banned: imported 1, already listed 0, invalid 0"
    assert lines[1] == "entry IDs: 2"
    assert lines[2].startswith("stored incoming files matched: 1; the running daemon (PID ")
    line = daemon.wait_for(rf"{re.escape(str(upload))}: known .*-> quarantine", timeout=10)[0]
    assert "entry=2 label='partner-ban' sha256=identical" in line
    assert line.endswith("(retroactive: entry 2)")
    assert daemon.stop() == 0
