"""Provenance rides with the fingerprint: computed by the decoding worker, checked on its way
back, stored with the file (schema 12), and gone with the fingerprint when a file breaks."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from imagewatchd.decoding import Settings, fingerprint_path
from imagewatchd.decoding.pool import WorkerPool, _answer
from imagewatchd.errors import FingerprintError
from imagewatchd.fingerprint import fingerprint_file
from imagewatchd.models import Role
from imagewatchd.provenance import Provenance
from imagewatchd.store import Store
from tests.test_keep import CAMERA, CAPTURED, write_photo

EXPECTED = Provenance("Canon EOS 5D Mark IV", "2019-05-01T12:34:56", "Adobe Photoshop 25", 92)


@pytest.fixture
def pool() -> Iterator[WorkerPool]:
    decoder = WorkerPool(Settings(timeout=10.0, workers=1))
    yield decoder
    decoder.close()


def _camera_jpeg(tmp_path: Path) -> Path:
    tags = {**CAMERA, 0x0131: "Adobe Photoshop 25"}
    return write_photo(tmp_path / "a.jpg", quality=92, tags=tags, inner=CAPTURED)


def test_the_worker_reads_provenance_and_the_store_keeps_it(
    tmp_path: Path, pool: WorkerPool
) -> None:
    path = _camera_jpeg(tmp_path)
    stat, fp = fingerprint_path(pool, path)
    assert fp.provenance == EXPECTED
    assert fingerprint_file(path)[1].provenance == EXPECTED  # inline: the same
    with Store(tmp_path / "db.sqlite") as store:
        store.save_file(str(path), stat, Role.LIBRARY, fp, time.time())
        row = store.get_file(str(path))
        assert row is not None and row.provenance == EXPECTED
        store.save_file_error(str(path), stat, Role.LIBRARY, "broken", time.time())
        row = store.get_file(str(path))
        assert row is not None and row.provenance == Provenance()


def test_a_png_has_no_provenance(tmp_path: Path, pool: WorkerPool) -> None:
    path = write_photo(tmp_path / "a.png", fmt="PNG")
    assert fingerprint_path(pool, path)[1].provenance == Provenance()


def _reply(path: Path, found: list[Any]) -> dict[str, Any]:
    stat, fp = fingerprint_file(path)
    fields = [fp.sha256, fp.dhash, fp.phash, fp.width, fp.height, fp.format, fp.flat, fp.pdq,
              fp.pdq_quality, fp.canon_version, [], [], found, [], fp.grid.hex(), [],
              (fp.colours or b"").hex(), []]  # fmt: skip
    return {"stat": [stat.device, stat.inode, stat.size, stat.mtime_ns], "fingerprint": fields}


@pytest.mark.parametrize(
    "found",
    [
        [None, None, None, 0],
        [None, None, None, 101],
        [None, None, None, "95"],
        ["x" * 65, None, None, None],
        ["bell\x07", None, None, None],
        [None, None, None],
    ],
)
def test_a_worker_reply_with_odd_provenance_is_refused(tmp_path: Path, found: list[Any]) -> None:
    path = _camera_jpeg(tmp_path)
    reply = _reply(path, found)
    with path.open("rb") as f, pytest.raises(FingerprintError, match="malformed"):
        _answer(reply, f.fileno())
    with path.open("rb") as f:  # the same reply with sane values passes
        assert _answer(_reply(path, ["Canon", None, None, 1]), f.fileno())[1].provenance == (
            Provenance("Canon", None, None, 1)
        )
