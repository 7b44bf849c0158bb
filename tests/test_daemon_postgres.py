"""The daemon on a PostgreSQL store: a real subprocess, a real server (``pgcluster.py``)."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import psycopg

from tests.conftest import photo
from tests.daemon_harness import Daemon, iw, sha256
from tests.test_daemon import WRITTEN, config_for, write


def test_a_daemon_on_postgresql_quarantines_a_listed_picture(tmp_path: Path, pg_url: str) -> None:
    site = {name: tmp_path / name for name in ("uploads", "library", "dupes", "quarantine")}
    for name in ("uploads", "library"):
        site[name].mkdir()
    banned = tmp_path / "banned.jpg"
    photo(100, (800, 600)).save(banned, quality=90)
    env = {"XDG_STATE_HOME": str(tmp_path / "xdg-state")}  # the store's local files
    added = iw(pg_url, "known", "add", "--create", "--list", "banned", str(banned), env=env)
    assert added.returncode == 0, added.stderr
    daemon = Daemon(tmp_path, config_for(site), url=pg_url, env=env).start()
    try:
        upload = write(site["uploads"] / "a.png", 100, (400, 300))
        assert "known list=banned" in daemon.processed(upload)
        assert not upload.exists()
        assert [sha256(p) for p in site["quarantine"].iterdir()] == [WRITTEN[upload]]
        listed = iw(pg_url, "quarantine", "list", "--json", env=env)
        assert [item["original"] for item in json.loads(listed.stdout)] == [str(upload)]
        assert daemon.stop() == 0
    finally:
        daemon.kill()
    with psycopg.connect(pg_url) as db:
        journal = db.execute("SELECT host, kind, state FROM host_actions").fetchall()
        hits = db.execute("SELECT hits FROM entries").fetchall()
    assert journal == [(socket.gethostname(), "quarantine", "done")]
    assert hits == [(1,)]


def host_site(base: Path) -> dict[str, Path]:
    site = {name: base / name for name in ("uploads", "library", "dupes", "quarantine")}
    for name in ("uploads", "library"):
        site[name].mkdir(parents=True)
    return site


def test_a_ban_added_through_one_host_is_enforced_by_the_other(tmp_path: Path, pg_url: str) -> None:
    """Two daemons on one machine sharing one bank: each keeps its own files and journal, and
    picks up the shared list's new entries while running (no restart, no reload)."""
    banned = tmp_path / "banned.jpg"
    photo(100, (800, 600)).save(banned, quality=90)
    sites = {host: host_site(tmp_path / host) for host in ("a", "b")}
    envs = {host: {"XDG_STATE_HOME": str(tmp_path / host / "state")} for host in sites}
    made = iw(pg_url, "lists", "create", "banned", env=envs["a"])
    assert made.returncode == 0, made.stderr
    daemons = {
        host: Daemon(
            tmp_path / host, {**config_for(site), "host": host}, url=pg_url, env=envs[host]
        )
        for host, site in sites.items()
    }
    try:
        for daemon in daemons.values():
            daemon.start()
        added = iw(pg_url, "known", "add", "--list", "banned", str(banned), env=envs["a"])
        assert added.returncode == 0, added.stderr
        daemons["b"].wait_for("lists changed: 1 near-match entries loaded")
        upload = write(sites["b"]["uploads"] / "a.png", 100, (400, 300))
        assert "known list=banned" in daemons["b"].processed(upload)
        assert [sha256(p) for p in sites["b"]["quarantine"].iterdir()] == [WRITTEN[upload]]
        assert "lists changed" in daemons["a"].wait_for("lists changed")[0]
        for daemon in daemons.values():
            assert daemon.stop() == 0
    finally:
        for daemon in daemons.values():
            daemon.kill()
    with psycopg.connect(pg_url) as db:
        journal = db.execute("SELECT host, kind, state FROM host_actions").fetchall()
    assert journal == [("b", "quarantine", "done")]
    for host, count in (("a", 0), ("b", 1)):  # each host's own quarantine
        listed = iw(pg_url, "quarantine", "list", "--json", config=daemons[host].config_path)
        assert len(json.loads(listed.stdout)) == count, listed.stderr
