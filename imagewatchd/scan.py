"""One-shot indexing of trees as library files: fingerprint what changed, skip what did not."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from imagewatchd.decoding import Decoder, fingerprint_at
from imagewatchd.decoding.pool import DecoderUnavailable
from imagewatchd.errors import FingerprintError
from imagewatchd.fileops import Location
from imagewatchd.filters import Selection, walk
from imagewatchd.match import Matcher
from imagewatchd.models import FileStat, Fingerprint, Role
from imagewatchd.rows import FileRow
from imagewatchd.store import Store

log = logging.getLogger(__name__)

ProgressHook = Callable[[int, int, str], None]


@dataclass(slots=True)
class ScanSummary:
    files: int = 0
    new: int = 0
    changed: int = 0
    unchanged: int = 0
    errors: int = 0
    removed: int = 0
    duplicate_groups: int = 0
    error_lines: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return {
            "files": self.files, "new": self.new, "changed": self.changed,
            "unchanged": self.unchanged, "errors": self.errors, "removed": self.removed,
            "duplicate_groups": self.duplicate_groups,
        }  # fmt: skip


@dataclass(frozen=True, slots=True)
class _Todo:
    root: Path
    path: Path
    stat: FileStat
    known: bool  # the store has a row for this path already
    for_colours: bool = False  # unchanged, read again only for its colours (colours.py)

    @property
    def location(self) -> Location:
        return Location(self.root, PurePosixPath(self.path.relative_to(self.root)))


class Scanner:
    """Indexes trees into the store and the matcher's library index.

    ``workers`` threads hand files to ``decoder`` (a pool of as many worker processes) and
    wait for their fingerprints; each file is opened from its tree's root, following no
    symlink on the way.
    """

    def __init__(
        self,
        store: Store,
        matcher: Matcher,
        selection: Selection,
        decoder: Decoder,
        *,
        workers: int = 2,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.matcher = matcher
        self.selection = selection
        self.decoder = decoder
        self.workers = workers
        self.clock = clock

    def scan(self, roots: Iterable[Path], progress: ProgressHook | None = None) -> ScanSummary:
        summary = ScanSummary()
        todo: list[_Todo] = []
        seen_ids: list[int] = []
        hues = self.store.ignoring_recoloured()  # files stored without colours: read again
        for root in roots:
            todo.extend(self._survey(root, summary, seen_ids, hues))
        self.store.touch_files(seen_ids, self.clock())
        summary.files = summary.unchanged + len(todo)
        done = summary.unchanged
        for item, result in self._fingerprint_all(todo):
            self._record(item, result, summary)
            done += 1
            if progress is not None:
                progress(done, summary.files, f"new {summary.new}, errors {summary.errors}")
        return summary

    def _survey(
        self, root: Path, summary: ScanSummary, seen_ids: list[int], hues: bool
    ) -> list[_Todo]:
        """Walk one tree: unchanged files are only counted; forget files that are gone. With
        ``hues`` (a list ignores recoloured copies), a file stored without its colours (by an
        earlier version) is read again, for them."""
        todo: list[_Todo] = []
        present: set[str] = set()

        def on_error(path: Path, exc: OSError) -> None:
            self._error(summary, f"{path}: {exc.strerror or exc}")

        for path, info in walk(root, self.selection, on_error=on_error):
            present.add(str(path))
            stat = FileStat.of(info)
            row = self.store.get_file(str(path))
            unchanged = row is not None and row.unchanged(stat)
            if row is not None and unchanged and not (hues and _uncoloured(row)):
                summary.unchanged += 1
                seen_ids.append(row.id)
            else:
                todo.append(_Todo(root, path, stat, row is not None, unchanged))
        gone = [(i, p) for i, p in self.store.files_under(str(root)) if p not in present]
        for file_id, _ in gone:
            self.matcher.remove_library_file(file_id)
        self.store.forget_files([file_id for file_id, _ in gone])
        summary.removed += len(gone)
        return todo

    def _fingerprint_all(
        self, todo: list[_Todo]
    ) -> Iterator[tuple[_Todo, tuple[FileStat, Fingerprint] | FingerprintError]]:
        with ThreadPoolExecutor(max_workers=self.workers) as pool:
            window = self.workers * 4  # bounded: never holds every decoded file at once
            futures: list[tuple[_Todo, Future[tuple[FileStat, Fingerprint]]]] = []
            for item in todo:  # each with its colours, stored with it (colours.py)
                job = pool.submit(fingerprint_at, self.decoder, item.location)
                futures.append((item, job))
                if len(futures) >= window:
                    yield _result(*futures.pop(0))
            for item, future in futures:
                yield _result(item, future)

    def _record(
        self,
        item: _Todo,
        result: tuple[FileStat, Fingerprint] | FingerprintError,
        summary: ScanSummary,
    ) -> None:
        now = self.clock()
        if isinstance(result, FingerprintError) and item.for_colours:
            self._error(summary, f"{item.path}: {result.reason} (its stored fingerprint is kept)")
            return  # what is stored still stands: the next scan reads it again
        if isinstance(result, FingerprintError):
            self._error(summary, f"{item.path}: {result.reason}")
            self.store.save_file_error(str(item.path), item.stat, Role.LIBRARY, result.reason, now)
            return
        stat, fp = result
        file_id = self.store.save_file(str(item.path), stat, Role.LIBRARY, fp, now)
        self.matcher.add_library_file(file_id, fp)
        if item.for_colours:
            summary.unchanged += 1  # the same picture, now with its colours
        elif item.known:
            summary.changed += 1
        else:
            summary.new += 1
        log.debug("indexed %s sha256=%s flat=%s", item.path, fp.sha256[:12], fp.flat)

    def _error(self, summary: ScanSummary, line: str) -> None:
        summary.errors += 1
        summary.error_lines.append(line)
        log.warning("%s", line)


def _uncoloured(row: FileRow) -> bool:
    """A fingerprinted file stored before files kept their colours (``colours`` NULL); a flat
    one needs none (it matches by sha256 only)."""
    return row.colours is None and row.error is None and not row.flat and row.sha256 is not None


def _result(
    item: _Todo, future: Future[tuple[FileStat, Fingerprint]]
) -> tuple[_Todo, tuple[FileStat, Fingerprint] | FingerprintError]:
    try:
        return item, future.result()
    except FingerprintError as exc:
        return item, exc
    except DecoderUnavailable:
        raise  # not this file's fault: stop with the reason
    except Exception as exc:  # a bug for one file must not stop the run
        log.debug("fingerprinting %s failed", item.path, exc_info=True)
        return item, FingerprintError(item.path, f"internal error: {exc!r}")
