"""The review application through Flask's test client: the quarantine in pages."""

from __future__ import annotations

import re
from pathlib import Path

from imagewatchd.config import parse
from imagewatchd.decoding.inline import InlineDecoder
from imagewatchd.models import FileStat
from imagewatchd.review.app import Secrets, create_app
from imagewatchd.review.state import Review
from imagewatchd.rows import NewAction
from imagewatchd.store import Store

HOST = {"Host": "127.0.0.1:8421"}


def _quarantined(store: Store, quarantine: Path, count: int) -> None:
    for n in range(count):
        action = NewAction(
            kind="quarantine", src_root="/srv/uploads", src_rel=f"u{n}.jpg",
            dst_root=str(quarantine), dst_rel=f"q{n}", tmp_name=None, sha256=f"{n:064x}",
            stat=FileStat(1, n, 10, 0), atime_ns=0, uid=0, gid=0, mode=0o600, verdict="known",
            evidence='{"matches": [{"list": "banned", "entry_id": 1, "label": "cat"}]}',
            rule="watches[0].on_known",
        )  # fmt: skip
        store.finish(store.intend(action, 1.0 + n), "done", 2.0 + n)


def test_the_quarantine_comes_in_pages_newest_first(tmp_path: Path) -> None:
    db, quarantine = tmp_path / "state" / "imagewatchd.db", tmp_path / "quarantine"
    with Store(db) as store:
        _quarantined(store, quarantine, 30)
    config = parse({"quarantine_dir": str(quarantine), "watches": []}, "<test>")
    review = Review(config, db, InlineDecoder())
    try:
        keys = Secrets()
        client = create_app(review, keys).test_client()
        first = client.get(f"/{keys.url}/quarantine", headers=HOST).get_data(as_text=True)
        assert re.findall(r'id="q(\d+)"', first) == [str(n) for n in range(30, 5, -1)]
        assert "30 file(s) in the quarantine, newest first · page 1 of 2" in first
        assert f'href="/{keys.url}/quarantine?page=2"' in first
        second = client.get(f"/{keys.url}/quarantine?page=2", headers=HOST)
        assert re.findall(r'id="q(\d+)"', second.get_data(as_text=True)) == [
            "5",
            "4",
            "3",
            "2",
            "1",
        ]
        assert client.get("/quarantine", headers=HOST).status_code == 403
    finally:
        review.close()
