"""A dry-run daemon records nothing a real run would then skip: a winning newcomer (a better
copy arriving in the library, whose beaten copy a real run moves) is left unrecorded, so the
real run that follows still decides it and moves the worse copy."""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.daemon_harness import Daemon
from tests.test_daemon_keep import _copies, _daemon


def test_a_dry_run_leaves_a_winning_newcomer_for_the_real_run(
    tmp_path: Path, daemons: list[Daemon]
) -> None:
    library = tmp_path / "library"
    library.mkdir()
    copies = _copies(tmp_path / "outside")
    shutil.copy(copies["thumb.jpg"], library / "thumb.jpg")
    dry = _daemon(tmp_path, library)
    dry.extra = ("--dry-run",)
    daemons.append(dry)
    dry.start()
    dry.wait_for("first index complete")
    shutil.copy(copies["IMG_0001.jpg"], library / "IMG_0001.jpg")
    line = dry.processed(library / "IMG_0001.jpg")
    assert "kept: a better copy" in line, line
    assert "-> would move" in dry.processed(library / "thumb.jpg")
    assert dry.stop() == 0
    assert (library / "thumb.jpg").exists()  # a dry run moves nothing
    real = _daemon(tmp_path, library)
    daemons.append(real)
    real.start()
    moved = real.processed(library / "thumb.jpg")
    assert "-> move" in moved, real.log()
    assert sorted(p.name for p in library.iterdir()) == ["IMG_0001.jpg"]
    assert (tmp_path / "dupes" / "thumb.jpg").exists()
    assert real.stop() == 0
