"""Files whose times are set after their writer closed them (``cp -p``, ``tar``, ``unzip``,
``shutil.copy2``): the close settles the file at once, so the daemon may be reading it when the
mtime changes; the attribute change must bring the file back, not leave it as an error until
the next rescan."""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

from tests.daemon_harness import Daemon
from tests.test_daemon_journal import UNDO_SCALE, banned_daemon, upload


def test_a_file_whose_mtime_is_set_after_its_close_is_processed(
    tmp_path: Path, daemons: list[Daemon]
) -> None:
    daemon = banned_daemon(tmp_path, tmp_path / "quarantine", settle=0.3)
    daemons.append(daemon.start())
    outside = upload(tmp_path / "big.png", 1, UNDO_SCALE)  # decoding it takes a while
    arrived = tmp_path / "uploads" / "big.png"
    with arrived.open("wb") as out:
        out.write(outside.read_bytes())
    time.sleep(0.2)  # the close settled it: the daemon is decoding it (the PNG takes longer)
    with contextlib.suppress(FileNotFoundError):  # quarantined already: it won the race
        os.utime(arrived, (1_000_000_000, 1_000_000_000))  # as cp -p does, after the close
    line = daemon.wait_for(rf"INFO: {arrived}: known .* -> quarantine", timeout=30)[-1]
    assert "quarantine" in line
    assert not arrived.exists()
