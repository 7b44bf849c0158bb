"""The review page: a Flask application for one person on this machine.

Every request must carry the secret as the first component of its path (a 403 otherwise) and a
``Host`` of 127.0.0.1 or localhost (a 403 otherwise: a DNS-rebinding page cannot reach it by a
name of its own); every change is a POST whose form carries a second secret (a 403 otherwise),
which only a page served by this server knows. Names are escaped twice over: ``shown()`` for
what is not printable, then Jinja2's autoescaping for HTML; a Content-Security-Policy lets only
the page's own script run.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from flask import Blueprint, Flask, Response, abort, redirect, render_template, request, url_for
from werkzeug.wrappers.response import Response as BaseResponse

from imagewatchd.names import shown
from imagewatchd.review.groups import PAGE_SIZE, Filter, page, parse_day
from imagewatchd.review.state import ACTION_ERRORS, Review

LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost"})
CSP = (
    "default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'; "
    "script-src 'nonce-{nonce}'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)


@dataclass
class Secrets:
    url: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    form: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    notices: list[str] = field(default_factory=list)  # said once, on the next page shown


def create_app(
    review: Review, keys: Secrets, say: Callable[[str], None] = lambda line: None
) -> Flask:
    """The page; ``say`` gets one line (names escaped) for each decision or action taken."""
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = 64 << 10
    pages = Blueprint("review", __name__, url_prefix=f"/{keys.url}")
    _routes(pages, review, keys, say)
    app.register_blueprint(pages)
    app.before_request(lambda: _guard(keys))
    app.after_request(_headers)
    return app


def _guard(keys: Secrets) -> None:
    host = (request.host or "").rsplit(":", 1)[0].strip("[]")
    if host not in LOCAL_HOSTS:
        abort(403)
    first = request.path.lstrip("/").split("/", 1)[0]
    if not secrets.compare_digest(first.encode(), keys.url.encode()):
        abort(403)
    if request.method == "POST":
        given = request.form.get("csrf", "")
        if not secrets.compare_digest(given.encode(), keys.form.encode()):
            abort(403)
    request.environ["imagewatchd.nonce"] = secrets.token_urlsafe(12)


def _headers(response: Response) -> Response:
    nonce = request.environ.get("imagewatchd.nonce", "none")
    response.headers["Content-Security-Policy"] = CSP.format(nonce=nonce)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Cache-Control"] = "no-store"
    return response


def _render(template: str, keys: Secrets, **context: Any) -> str:
    notices, keys.notices[:] = list(keys.notices), []
    prefix = f"/{keys.url}"

    def page_url(number: int) -> str:
        return f"{request.path}?{urlencode({**request.args.to_dict(), 'page': number})}"

    return render_template(
        template, csrf=keys.form, nonce=request.environ["imagewatchd.nonce"], notices=notices,
        static=False, prefix=prefix, back=request.full_path.rstrip("?"), page_url=page_url,
        thumb=lambda f: f"{prefix}/thumb/{f.id}", **context,
    )  # fmt: skip


def _routes(pages: Blueprint, review: Review, keys: Secrets, say: Callable[[str], None]) -> None:
    @pages.get("/")
    def groups() -> str:
        chosen = Filter(
            request.args.get("folder", ""), parse_day(request.args.get("since")),
            parse_day(request.args.get("until")),
        )  # fmt: skip
        number = request.args.get("page", 1, type=int) or 1
        shown_page = review.run(lambda: page(review.groups(), chosen, number))
        return _render("groups.html", keys, page=shown_page, chosen=chosen, tab="groups")

    @pages.get("/similar")
    def similar() -> str:
        number = request.args.get("page", 1, type=int) or 1
        shown_page = review.run(lambda: page(review.similar(), Filter(), number))
        return _render("similar.html", keys, page=shown_page, tab="similar")

    @pages.get("/quarantine")
    def quarantine() -> str:
        rows = review.run(review.quarantined)
        size = PAGE_SIZE
        pages = max(1, -(-len(rows) // size))
        number = min(max(1, request.args.get("page", 1, type=int) or 1), pages)
        shown_rows = rows[(number - 1) * size : number * size]
        return _render(
            "quarantine.html", keys, rows=shown_rows, total=len(rows), number=number,
            pages=pages, tab="q",
        )  # fmt: skip

    @pages.get("/thumb/<int:file_id>")
    def file_thumb(file_id: int) -> Response:
        return _thumb(review, review.run(lambda: review.file_source(file_id)))

    @pages.get("/qthumb/<int:action_id>")
    def quarantine_thumb(action_id: int) -> Response:
        return _thumb(review, review.run(lambda: review.quarantine_source(action_id)))

    _posts(pages, review, keys, say)


def _posts(pages: Blueprint, review: Review, keys: Secrets, say: Callable[[str], None]) -> None:
    def posted(name: str, back: str, act: Callable[[int, int], str]) -> None:
        def handler() -> BaseResponse:
            first = request.form.get("id", type=int)
            other = request.form.get("other", 0, type=int) or 0
            if first is None:
                abort(400)
            try:
                notice = review.run(lambda: act(first, other))
            except ACTION_ERRORS as exc:  # names in their messages are as they are: escaped here
                notice = shown(f"{name} {first}: not done: {exc}")
            keys.notices.append(notice)
            say(notice)
            target = request.form.get("back", "")
            local = target.startswith(f"/{keys.url}/") and "//" not in target
            return redirect(target if local else url_for(back))

        pages.add_url_rule(f"/{name}", name, handler, methods=["POST"])

    posted("keep", "review.groups", lambda f, _: review.keep(f))
    posted("not-duplicate", "review.groups", review.not_duplicate)
    posted("apply", "review.groups", lambda f, _: review.apply(f))
    posted("restore", "review.quarantine", lambda a, _: review.restore(a))
    posted("delete", "review.quarantine", lambda a, _: review.delete(a))


def _thumb(review: Review, found: tuple[str, str | None] | None) -> Response:
    if found is None:
        abort(404)
    jpeg = review.thumbs.get(*found)
    if jpeg is None:
        abort(404)
    response = Response(jpeg, mimetype="image/jpeg")
    return response
