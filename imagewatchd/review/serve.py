"""``imagewatchd review [--port N]``: serve the review page on 127.0.0.1 until interrupted;
``imagewatchd review --html FILE``: write the groups, thumbnails embedded, to one static file."""

from __future__ import annotations

import argparse
import base64
import logging
import os
import signal
import tempfile
import time
from pathlib import Path
from types import FrameType

from jinja2 import Environment, PackageLoader, select_autoescape

from imagewatchd import commands, paths
from imagewatchd.decoding import open_decoder
from imagewatchd.errors import EXIT_OK
from imagewatchd.names import shown
from imagewatchd.review.app import Secrets, create_app
from imagewatchd.review.groups import FileView, view
from imagewatchd.review.state import Review

log = logging.getLogger(__name__)
HOST = "127.0.0.1"


def review(args: argparse.Namespace) -> int:
    config = commands.load_config(args)
    db_path = paths.database(args.db, config.database, config.host)
    decoder = open_decoder(config)
    state = Review(config, db_path, decoder)
    try:
        started = time.monotonic()
        groups = state.run(state.groups)  # the index and the groups, before the first page
        pruned = state.run(state.prune)
        log.info("%d duplicate group(s) found in %.1f s; %d unused thumbnail(s) removed",
                 len(groups), time.monotonic() - started, pruned)  # fmt: skip
        if args.html:
            return _write_html(state, Path(args.html))
        return _serve(state, args.port)
    finally:
        state.close()
        decoder.close()


def _serve(state: Review, port: int) -> int:
    from waitress import create_server  # noqa: PLC0415 (only the server needs it)

    keys = Secrets()
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)  # thumbnails queue up: no news
    app = create_app(state, keys, say=lambda line: print(line, flush=True))
    server = create_server(app, host=HOST, port=port, threads=4)
    print(f"review page: http://{HOST}:{server.effective_port}/{keys.url}/", flush=True)
    print("(the address holds a secret: share it with no one; Ctrl-C stops)", flush=True)

    def stop(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
    return EXIT_OK


def _write_html(state: Review, target: Path) -> int:
    """All the groups, best first, each thumbnail a data: URI: one file to share."""
    views = [view(g) for g in state.run(state.groups)]
    sources = state.run(lambda: {f.id: state.file_source(f.id) for g in views for f in g.files})

    def thumb(f: FileView) -> str:
        found = sources.get(f.id)
        jpeg = state.thumbs.get(*found) if found else None
        return "data:image/jpeg;base64," + base64.b64encode(jpeg).decode() if jpeg else ""

    env = Environment(
        loader=PackageLoader("imagewatchd.review"), autoescape=select_autoescape(default=True)
    )
    written = time.strftime("%Y-%m-%d %H:%M %Z")
    html = env.get_template("report.html").render(
        groups=views, thumb=thumb, static=True, notices=[], written=written
    )
    _save(target, html)
    print(shown(f"wrote {len(views)} group(s) to {target}"))
    return EXIT_OK


def _save(target: Path, text: str) -> None:
    """Atomically: a reader sees the old report or the new one."""
    fd, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
