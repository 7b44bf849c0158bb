"""A daemon on a PostgreSQL bank keeps its entry index current from the change log: a lost
wake-up is caught up by polling the head; a disable is applied without loading the bank
whole; status, metrics and the database say which change it applied last."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import psycopg

from imagewatchd.api.client import Client
from tests.conftest import photo
from tests.daemon_harness import Daemon, iw
from tests.test_api import metric_samples
from tests.test_daemon import config_for, write
from tests.test_daemon_postgres import host_site


def status(daemon: Daemon, url: str, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "imagewatchd", "--db", url, "--config",
         str(daemon.config_path), "status", *args],
        capture_output=True, text=True, env=daemon.env, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_a_lost_wake_up_is_caught_up_and_a_disable_applied_in_place(
    tmp_path: Path, pg_url: str
) -> None:
    banned = tmp_path / "banned.jpg"
    photo(100, (800, 600)).save(banned, quality=90)
    site = host_site(tmp_path / "a")
    env = {"XDG_STATE_HOME": str(tmp_path / "a" / "state")}
    assert iw(pg_url, "lists", "create", "banned", env=env).returncode == 0
    config = {**config_for(site), "host": "a", "api": {"timeout_seconds": 5}}
    daemon = Daemon(tmp_path / "a", config, url=pg_url, env=env)
    with psycopg.connect(pg_url, autocommit=True) as db:  # every wake-up is lost from now on
        db.execute("ALTER TABLE entries DISABLE TRIGGER entries_notify")
    try:
        daemon.start()
        added = iw(pg_url, "known", "add", "--list", "banned", str(banned), env=env)
        assert added.returncode == 0, added.stderr
        daemon.wait_for("lists changed: 1 near-match entries loaded")  # by polling the head
        upload = write(site["uploads"] / "a.png", 100, (400, 300))
        assert "known list=banned" in daemon.processed(upload)
        assert "bank: change 1 applied, head 1 (0 behind)" in status(daemon, pg_url)
        assert iw(pg_url, "known", "disable", "1", env=env).returncode == 0
        daemon.wait_for("lists changed: 0 near-match entries loaded")
        again = write(site["uploads"] / "b.png", 100, (400, 300))
        assert "known" not in daemon.processed(again)
        bank = json.loads(status(daemon, pg_url, "--json"))["bank"]
        assert bank == {"applied": 2, "head": 2, "behind": 0, "whole_loads": 1}
        client = Client(daemon.socket, 60.0)
        try:
            samples = metric_samples(client)
        finally:
            client.close()
        assert samples[("imagewatchd_bank_applied_seq", ())] == 2
        assert samples[("imagewatchd_bank_head_seq", ())] == 2
        with psycopg.connect(pg_url) as db:
            rows = db.execute("SELECT host, applied, head FROM host_bank").fetchall()
        assert rows == [("a", 2, 2)]
        assert daemon.stop() == 0
    finally:
        daemon.kill()
