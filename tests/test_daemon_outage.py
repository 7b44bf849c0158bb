"""A PostgreSQL outage while the daemon runs: the host keeps enforcing the bank it has, keeps
its journal locally (a SQLite spool in its state directory), and catches up when the database
returns (docs/FLEET.md, issue 13 item 3). A real daemon subprocess, a real server stopped and
started again (``pgcluster.py``)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.conftest import photo
from tests.daemon_harness import Daemon, iw, sha256
from tests.pgcluster import Cluster
from tests.test_daemon import WRITTEN, config_for, write

HOST = "upload-1"
WARNING = r"WARNING: .*: the database is unreachable"
BACK = r"INFO: .*: the database is back"
MIRRORED = r"INFO: .*: the bank copied into the local spool"


@pytest.fixture
def outage(pg_cluster: Cluster) -> Iterator[Cluster]:
    """The cluster, started again at the end whatever the test did."""
    try:
        yield pg_cluster
    finally:
        with contextlib.suppress(RuntimeError):  # running already
            pg_cluster.start()


def site_daemon(base: Path, url: str) -> tuple[Daemon, dict[str, Path]]:
    site = {name: base / name for name in ("uploads", "library", "dupes", "quarantine")}
    for name in ("uploads", "library"):
        site[name].mkdir()
    env = {"XDG_STATE_HOME": str(base / "xdg-state")}
    config: dict[str, Any] = {**config_for(site), "host": HOST}
    return Daemon(base, config, url=url, env=env), site


def ban(url: str, daemon: Daemon, seed: int) -> None:
    picture = daemon.base / f"banned-{seed}.jpg"
    photo(seed, (800, 600)).save(picture, quality=90)
    added = iw(url, "known", "add", "--create", "--list", "banned", str(picture),
               config=daemon.config_path)  # fmt: skip
    assert added.returncode == 0, added.stderr


def journal(url: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as db:
        rows = db.execute("SELECT host, kind, state, src_root, src_rel FROM host_actions")
        return [
            (host, kind, state, os.path.join(os.fsdecode(root), os.fsdecode(rel)))
            for host, kind, state, root, rel in rows
        ]


def test_a_ban_made_before_an_outage_is_enforced_during_it_and_journalled_after(
    tmp_path: Path, pg_url: str, outage: Cluster
) -> None:
    daemon, site = site_daemon(tmp_path, pg_url)
    ban(pg_url, daemon, 100)
    daemon.start()
    try:
        daemon.wait_for(MIRRORED)  # the host's local copy of the bank
        outage.pause()
        upload = write(site["uploads"] / "a.png", 100, (400, 300))
        assert "known list=banned" in daemon.processed(upload)
        assert not upload.exists()
        assert [sha256(p) for p in site["quarantine"].iterdir()] == [WRITTEN[upload]]
        assert len(daemon.wait_for(WARNING)) == 1
        assert "not processed" not in daemon.log()
        status = iw(pg_url, "status", config=daemon.config_path, env=daemon.env)
        assert "database unreachable since" in status.stdout, status.stderr
        undo = iw(pg_url, "undo", "--last", config=daemon.config_path, env=daemon.env)
        assert undo.returncode != 0
        assert len(undo.stderr.splitlines()) == 1, undo.stderr
        assert "run this command again" in undo.stderr, undo.stderr
        outage.start()
        daemon.wait_for(BACK, timeout=30)
        daemon.wait_for(r"reconcile: \d+ file", count=2)  # what the spool saw, recorded
        assert journal(pg_url) == [(HOST, "quarantine", "done", str(upload))]
        listed = iw(pg_url, "quarantine", "list", "--json", config=daemon.config_path)
        assert [item["original"] for item in json.loads(listed.stdout)] == [str(upload)]
        ban(pg_url, daemon, 200)  # a new ban after the return is picked up
        daemon.wait_for("lists changed: 2 near-match entries loaded")
        second = write(site["uploads"] / "b.png", 200, (400, 300))
        assert "known list=banned" in daemon.processed(second)
        assert len(daemon.wait_for(WARNING)) == 1
        assert daemon.stop() == 0
    finally:
        daemon.kill()
    with psycopg.connect(pg_url) as db:
        hits = db.execute("SELECT hits FROM entries ORDER BY id").fetchall()
    assert hits == [(1,), (1,)]
    assert re.findall(BACK, daemon.log())


# The real daemon, with one test hook: while the trigger file exists, the process is killed
# (SIGKILL) right after a move, before its journal entry says "done".
KILL_AFTER_MOVE = """
import os, signal, sys
from pathlib import Path
from imagewatchd import cli, fileops

trigger = Path(sys.argv[1])
original = fileops.move

def move_then_die(*args, **kwargs):
    result = original(*args, **kwargs)
    if trigger.exists():
        os.kill(os.getpid(), signal.SIGKILL)
    return result

fileops.move = move_then_die
sys.exit(cli.main(sys.argv[2:]))
"""


def test_a_daemon_killed_mid_quarantine_in_an_outage_loses_nothing(
    tmp_path: Path, pg_url: str, outage: Cluster
) -> None:
    daemon, site = site_daemon(tmp_path, pg_url)
    trigger = tmp_path / "kill-after-move"
    daemon.program = [sys.executable, "-c", KILL_AFTER_MOVE, str(trigger)]
    ban(pg_url, daemon, 100)
    daemon.start()
    try:
        daemon.wait_for(MIRRORED)
        outage.pause()
        trigger.touch()
        upload = write(site["uploads"] / "a.png", 100, (400, 300))
        assert daemon.proc is not None
        assert daemon.proc.wait(timeout=30) == -signal.SIGKILL
        assert not upload.exists()  # moved, and the journal says "intended" in the spool
        (moved,) = site["quarantine"].iterdir()
        assert sha256(moved) == WRITTEN[upload]
        trigger.unlink()
        outage.start()
        daemon.start()
        daemon.wait_for(rf"recovered action \d+ \(quarantine {re.escape(str(upload))}\): done$")
        daemon.wait_for(r"1 action\(s\) journalled locally during an outage copied")
        assert journal(pg_url) == [(HOST, "quarantine", "done", str(upload))]
        listed = iw(pg_url, "quarantine", "list", "--json", config=daemon.config_path)
        assert [item["original"] for item in json.loads(listed.stdout)] == [str(upload)]
        assert daemon.stop() == 0
    finally:
        daemon.kill()


def test_a_start_during_an_outage_without_a_copy_of_the_bank_fails_with_one_line(
    tmp_path: Path, pg_url: str, outage: Cluster
) -> None:
    """No daemon ran here before: neither a bank snapshot nor a spool holds the bank."""
    daemon, _ = site_daemon(tmp_path, pg_url)
    ban(pg_url, daemon, 100)
    outage.pause()
    daemon.start(wait=False)
    assert daemon.proc is not None
    assert daemon.proc.wait(timeout=30) != 0
    (line,) = [line for line in daemon.log().splitlines() if "api: listening" not in line]
    assert "cannot open the database" in line
    assert "no local copy of the bank to enforce meanwhile" in line
    assert line.endswith("start once with the database reachable")


OFFLINE = (
    r"WARNING: .*: the database is unreachable at start-up \(.*\); enforcing the bank as of "
    r"change (\d+) \(1 entries, from .*postgresql\.spool\.db\)"
)


def test_a_start_during_an_outage_enforces_the_bank_it_last_had_and_catches_up(
    tmp_path: Path, pg_url: str, outage: Cluster
) -> None:
    daemon, site = site_daemon(tmp_path, pg_url)
    ban(pg_url, daemon, 100)
    daemon.start()
    try:
        daemon.wait_for(MIRRORED)  # the host's local copy of the bank, in its spool
        assert daemon.stop() == 0
        outage.pause()
        daemon.start(wait=False)  # the start-up reconcile waits for the database
        (line,) = daemon.wait_for(OFFLINE, timeout=30)
        daemon.wait_for("INFO: watching ")
        daemon.wait_for("WARNING: database check: not run: ")
        assert int(re.findall(OFFLINE, line)[0]) >= 1  # the ban's change
        upload = write(site["uploads"] / "a.png", 100, (400, 300))
        assert "known list=banned" in daemon.processed(upload)
        assert not upload.exists()
        assert [sha256(p) for p in site["quarantine"].iterdir()] == [WRITTEN[upload]]
        assert len(re.findall(WARNING, daemon.log())) == 1  # the outage said once, at the start
        status = iw(pg_url, "status", config=daemon.config_path, env=daemon.env)
        assert "database unreachable since" in status.stdout, status.stderr
        outage.start()
        daemon.wait_for(BACK, timeout=30)
        daemon.wait_for(r"reconcile: \d+ file")  # the start-up's, and the return's
        assert journal(pg_url) == [(HOST, "quarantine", "done", str(upload))]
        ban(pg_url, daemon, 200)  # the bank's changes are applied again
        daemon.wait_for("lists changed: 2 near-match entries loaded")
        second = write(site["uploads"] / "b.png", 200, (400, 300))
        assert "known list=banned" in daemon.processed(second)
        assert daemon.stop() == 0
    finally:
        daemon.kill()
    assert "Traceback" not in daemon.log()
    assert "database check: ok" not in daemon.log()  # it did not run
