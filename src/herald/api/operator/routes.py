"""The operator page's routes, under ``/operator``: server-rendered HTML and plain forms.

Signed out, every page shows the sign-in form (an API key with the ``operator`` scope). Every
POST needs the session's CSRF token; a missing or wrong one is refused with 403 and changes
nothing. Whatever an operator changes is recorded with the key's owner as "who".
"""

from __future__ import annotations

import logging
import queue
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from importlib import resources
from typing import Annotated, Any
from urllib.parse import urlencode

import orjson
import redis
from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from jinja2 import Environment, PackageLoader, StrictUndefined

from herald.access.apikeys import ApiKey, KeyStore
from herald.api.deps import redis_of, settings_of
from herald.api.operator.session import (
    SESSION_COOKIE,
    SIGNIN_COOKIE,
    Session,
    Sessions,
    SessionsUnavailable,
    alive,
    forget,
    remember,
)
from herald.api.operator.views import IN_DOUBT_PAGE, account_view, in_doubt_count, in_doubt_rows
from herald.config import Settings
from herald.delivery.indoubt import resolve
from herald.display.timefmt import display_zone, zone_note
from herald.holds.holdcsv import (
    CsvHeaderError,
    HoldInputError,
    ImportReport,
    build_hold,
    import_holds,
    parse_categories,
    read_rows,
)
from herald.holds.suppression import CATEGORIES, SuppressionStore
from herald.models import ID_PATTERN, MAX_ID

log = logging.getLogger("herald.operator")

router = APIRouter(prefix="/operator", include_in_schema=False)

MAX_UPLOAD = 64 * 1024 * 1024
MAX_SHOWN_ERRORS = 1000
NDJSON = "application/x-ndjson"
_ACCOUNT = re.compile(ID_PATTERN)
_STATIC = {"operator.css": "text/css; charset=utf-8", "operator.js": "text/javascript; charset=utf-8"}
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
DONE = {
    "added": "Hold added.",
    "lifted": "Hold lifted.",
    "sent": "Resolved as sent.",
    "not_sent": "Resolved as not sent.",
}
ENDED = "You were signed out: your key was revoked or no longer has the operator scope."

_templates = Environment(
    loader=PackageLoader("herald.api.operator", "templates"),
    autoescape=True,
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


@dataclass
class Visit:
    """One request as the page sees it: the sessions, and who is signed in (if anyone)."""

    request: Request
    settings: Settings
    redis: redis.Redis
    sessions: Sessions | None
    unavailable: str
    session: Session | None = None
    operator: ApiKey | None = None
    ended: bool = False

    @property
    def base(self) -> str:
        """The page's root URL path (behind a proxy's root path too)."""
        return str(self.request.scope.get("root_path", "")).rstrip("/") + "/operator"


def _visit(request: Request) -> Visit:
    settings = settings_of(request)
    client = redis_of(request)
    try:
        sessions: Sessions | None = Sessions.from_settings(settings)
        unavailable = ""
    except SessionsUnavailable as exc:
        sessions, unavailable = None, str(exc)
    visit = Visit(request, settings, client, sessions, unavailable)
    if sessions is None:
        return visit
    cookie = request.cookies.get(SESSION_COOKIE)
    session = sessions.read(cookie)
    if session is not None and alive(client, session):
        key = KeyStore(client).get(session.key_id)
        if key is not None and key.allows("operator"):
            visit.session, visit.operator = session, key
        else:
            visit.ended = True
    elif cookie:
        visit.ended = True  # expired, signed out elsewhere, or signed with another secret
    return visit


def _finish(visit: Visit, response: Response) -> Response:
    for name, value in HEADERS.items():
        response.headers.setdefault(name, value)
    if visit.ended and visit.sessions is not None:
        visit.sessions.clear(response, path=visit.base)
    return response


def _render(visit: Visit, template: str, status: int = 200, **context: Any) -> Response:
    values: dict[str, Any] = {
        "base": visit.base,
        "operator": visit.operator,
        "csrf": visit.session.csrf if visit.session else "",
        "notice": "",
        "error": "",
        **context,
    }
    html = _templates.get_template(template).render(**values)
    return _finish(visit, HTMLResponse(html, status_code=status))


def _redirect(visit: Visit, path: str, **query: str) -> Response:
    url = visit.base + path + (f"?{urlencode(query)}" if query else "")
    return _finish(visit, RedirectResponse(url, status_code=303))


def _off(visit: Visit) -> Response:
    return _render(visit, "off.html", 503, message=visit.unavailable)


def _signin_page(visit: Visit, status: int = 200, *, error: str = "", notice: str = "") -> Response:
    assert visit.sessions is not None
    pending = visit.sessions.read(visit.request.cookies.get(SIGNIN_COOKIE), signin=True) or Sessions.new()
    if visit.ended and not notice:
        notice = ENDED
    response = _render(visit, "signin.html", status, csrf=pending.csrf, error=error, notice=notice)
    visit.sessions.write(response, pending, signin=True, path=visit.base)
    return response


def _page_gate(visit: Visit) -> Response | None:
    """What a signed-out GET gets instead of the page (None: go ahead)."""
    if visit.sessions is None:
        return _off(visit)
    if visit.operator is None:
        return _redirect(visit, "", **({"ended": "1"} if visit.ended else {}))
    return None


def _post_gate(visit: Visit, csrf: str) -> Response | None:
    """What a POST gets instead of being carried out (None: signed in, token right)."""
    if visit.sessions is None:
        return _off(visit)
    if visit.session is None or visit.operator is None:
        return _render(
            visit,
            "refused.html",
            403,
            message="You are not signed in (or your session ended). Nothing changed.",
        )
    if not visit.session.csrf_ok(csrf):
        log.warning("operator page: a post to %s without its CSRF token was refused", visit.request.url.path)
        return _render(
            visit,
            "refused.html",
            403,
            message="This form is out of date or did not come from this page (its CSRF token does not "
            "match your session). Nothing changed: reload the page and try again.",
        )
    return None


def _owner(visit: Visit) -> str:
    assert visit.operator is not None
    return visit.operator.owner


def _account_error(account: str) -> str:
    if not account:
        return "account_id: give an account id"
    if len(account) > MAX_ID or not _ACCOUNT.match(account):
        return f"account_id: {account[:40]!r} is not an account id (letters, digits and ._:@-)"
    return ""


def _account_page(
    visit: Visit,
    account: str,
    status: int = 200,
    *,
    notice: str = "",
    errors: dict[str, str] | None = None,
    form: dict[str, Any] | None = None,
) -> Response:
    view = account_view(visit.settings, visit.redis, account)
    entered = {"reason": "", "until": "", "agreement": "", "categories": ["collection"], **(form or {})}
    return _render(
        visit,
        "account.html",
        status,
        view=view,
        notice=notice,
        errors=errors or {},
        form=entered,
        categories=CATEGORIES,
        error="Nothing was changed: see the form below." if errors else "",
    )


# -- signing in and out -----------------------------------------------------------------


@router.get("", response_class=HTMLResponse)
def home(request: Request, ended: str = "") -> Response:
    """The sign-in form, or the account lookup once signed in."""
    visit = _visit(request)
    if visit.sessions is None:
        return _off(visit)
    if visit.operator is None:
        return _signin_page(visit, notice=ENDED if ended or visit.ended else "")
    return _render(visit, "home.html", in_doubt=in_doubt_count(visit.redis), account="")


@router.post("/signin")
def signin(request: Request, key: Annotated[str, Form()] = "", csrf: Annotated[str, Form()] = "") -> Response:
    """Check an operator key and start a session that names it."""
    visit = _visit(request)
    if visit.sessions is None:
        return _off(visit)
    pending = visit.sessions.read(request.cookies.get(SIGNIN_COOKIE), signin=True)
    if pending is None or not pending.csrf_ok(csrf):
        return _signin_page(visit, 403, error="The sign-in form expired or did not come from this page.")
    found = KeyStore(visit.redis).verify(key) if key.strip() else None
    if found is None or not found.allows("operator"):
        return _signin_page(
            visit,
            401,
            error="key: not a valid operator key (unknown, revoked, or without the operator scope).",
        )
    visit.ended = False
    response = _redirect(visit, "")
    session = Sessions.new(found.key_id)
    remember(visit.redis, session)
    visit.sessions.write(response, session, path=visit.base)
    visit.sessions.clear(response, signin=True, path=visit.base)
    log.info("operator page: key %s (%s) signed in", found.key_id, found.owner)
    return response


@router.post("/signout")
def signout(request: Request, csrf: Annotated[str, Form()] = "") -> Response:
    """End the session."""
    visit = _visit(request)
    if (refused := _post_gate(visit, csrf)) is not None:
        return refused
    assert visit.sessions is not None
    assert visit.session is not None
    forget(visit.redis, visit.session)
    response = _redirect(visit, "")
    visit.sessions.clear(response, path=visit.base)
    return response


# -- accounts and holds -----------------------------------------------------------------


@router.get("/account", response_class=HTMLResponse)
def account(request: Request, account: str = "", done: str = "") -> Response:
    """An account's holds, recent history and hold audit trail, with forms to add and lift holds."""
    visit = _visit(request)
    if (gate := _page_gate(visit)) is not None:
        return gate
    account = account.strip()
    if problem := _account_error(account):
        in_doubt = in_doubt_count(visit.redis)
        return _render(visit, "home.html", 400, error=problem, account=account, in_doubt=in_doubt)
    return _account_page(visit, account, notice=DONE.get(done, ""))


@router.post("/account/hold")
def add_hold(
    request: Request,
    account: Annotated[str, Form()] = "",
    reason: Annotated[str, Form()] = "",
    until: Annotated[str, Form()] = "",
    agreement: Annotated[str, Form()] = "",
    categories: Annotated[list[str] | None, Form()] = None,
    csrf: Annotated[str, Form()] = "",
) -> Response:
    """Hold the account (who: the signed-in operator)."""
    visit = _visit(request)
    if (refused := _post_gate(visit, csrf)) is not None:
        return refused
    account = account.strip()
    if problem := _account_error(account):
        return _render(visit, "refused.html", 400, message=problem)
    form = {"reason": reason, "until": until, "agreement": agreement, "categories": categories or []}
    try:
        if not categories:
            raise HoldInputError("categories", "categories: choose at least one category to hold")
        hold = build_hold(
            account,
            reason,
            until or None,
            agreement or None,
            parse_categories(categories),
            _owner(visit),
            timezone=visit.settings.default_timezone,
        )
    except HoldInputError as exc:
        return _account_page(visit, account, 400, errors={exc.field: exc.message}, form=form)
    change = SuppressionStore(visit.redis).add(hold)
    log.info("operator page: %s %s on %s by %s", change.action, hold.id, account, hold.by)
    return _redirect(visit, "/account", account=account, done="added")


@router.post("/account/lift")
def lift_hold(
    request: Request,
    account: Annotated[str, Form()] = "",
    hold: Annotated[str, Form()] = "",
    reason: Annotated[str, Form()] = "",
    csrf: Annotated[str, Form()] = "",
) -> Response:
    """Lift one hold of the account; its other holds stay."""
    visit = _visit(request)
    if (refused := _post_gate(visit, csrf)) is not None:
        return refused
    account = account.strip()
    if problem := _account_error(account):
        return _render(visit, "refused.html", 400, message=problem)
    if not reason.strip():
        errors = {f"lift:{hold}": "reason: say why the hold is lifted"}
        return _account_page(visit, account, 400, errors=errors)
    change = SuppressionStore(visit.redis).remove(account, by=_owner(visit), reason=reason.strip(), hold=hold)
    if not change.lifted:
        return _account_page(
            visit, account, 409, errors={"hold": f"hold: {account} has no hold {hold!r} (already lifted?)"}
        )
    log.info("operator page: lifted %s on %s by %s", hold, account, _owner(visit))
    return _redirect(visit, "/account", account=account, done="lifted")


# -- in-doubt deliveries ----------------------------------------------------------------


def _in_doubt_page(visit: Visit, offset: int, status: int = 200, **context: Any) -> Response:
    zone = display_zone(visit.settings)
    rows, total = in_doubt_rows(visit.redis, offset, zone)
    return _render(
        visit,
        "in_doubt.html",
        status,
        rows=rows,
        total=total,
        offset=offset,
        page=IN_DOUBT_PAGE,
        zone_note=zone_note(zone),
        **context,
    )


@router.get("/in-doubt", response_class=HTMLResponse)
def in_doubt(request: Request, offset: int = 0, done: str = "", key: str = "") -> Response:
    """Deliveries the provider may have accepted, oldest first, each with a form to settle it."""
    visit = _visit(request)
    if (gate := _page_gate(visit)) is not None:
        return gate
    notice = f"{key}: {DONE[done]}" if done in ("sent", "not_sent") and key else ""
    return _in_doubt_page(visit, max(0, offset), notice=notice)


@router.post("/in-doubt/resolve")
def resolve_in_doubt(
    request: Request,
    key: Annotated[str, Form()] = "",
    outcome: Annotated[str, Form()] = "",
    reason: Annotated[str, Form()] = "",
    csrf: Annotated[str, Form()] = "",
) -> Response:
    """Settle an in-doubt delivery as sent (the provider had it) or not sent (outcome failed)."""
    visit = _visit(request)
    if (refused := _post_gate(visit, csrf)) is not None:
        return refused
    problem = ""
    if outcome not in ("sent", "not_sent"):
        problem = "outcome: choose sent or not sent"
    elif not reason.strip():
        problem = "reason: say what you checked (e.g. the provider's log)"
    if problem:
        return _in_doubt_page(visit, 0, 400, error=f"{key}: {problem}")
    settled = resolve(
        visit.redis,
        key,
        sent=outcome == "sent",
        by=_owner(visit),
        reason=reason.strip(),
        events_maxlen=visit.settings.events_maxlen,
    )
    if not settled:
        return _in_doubt_page(visit, 0, 409, error=f"{key} is not in doubt (already resolved?)")
    log.info("operator page: %s resolved as %s by %s", key, outcome, _owner(visit))
    return _redirect(visit, "/in-doubt", done=outcome, key=key)


# -- hold CSV upload --------------------------------------------------------------------


def _report_json(report: ImportReport) -> dict[str, Any]:
    return {
        "summary": report.summary(),
        "lines": report.lines,
        "counts": report.counts,
        "errors": [asdict(e) for e in report.errors[:MAX_SHOWN_ERRORS]],
        "more_errors": max(0, len(report.errors) - MAX_SHOWN_ERRORS),
    }


def _ndjson(obj: dict[str, Any]) -> bytes:
    return orjson.dumps(obj) + b"\n"


@router.get("/import", response_class=HTMLResponse)
def import_form(request: Request) -> Response:
    """The upload form."""
    visit = _visit(request)
    if (gate := _page_gate(visit)) is not None:
        return gate
    return _render(visit, "import.html", result=None)


@router.post("/import")
def import_upload(
    request: Request,
    file: Annotated[UploadFile | None, File()] = None,
    csrf: Annotated[str, Form()] = "",
) -> Response:
    """Apply a hold CSV: bad lines are reported (line, field, message), good lines applied.

    With ``Accept: application/x-ndjson`` (the page's script) the answer streams one JSON line
    per batch applied (``{"progress": {"done", "total"}}``) and then ``{"result": ...}`` (or
    ``{"error": ...}``); otherwise it is the page with the result.
    """
    visit = _visit(request)
    if (refused := _post_gate(visit, csrf)) is not None:
        return refused
    streaming = NDJSON in request.headers.get("accept", "")
    problem, rows = "", []
    data = file.file.read(MAX_UPLOAD + 1) if file is not None else b""
    if file is None or not file.filename:
        problem = "file: choose a CSV file to upload"
    elif len(data) > MAX_UPLOAD:
        problem = f"file: larger than {MAX_UPLOAD // (1024 * 1024)} MiB; split it"
    else:
        try:
            rows = read_rows(data.decode("utf-8-sig"))
        except UnicodeDecodeError:
            problem = "file: not UTF-8 text"
        except CsvHeaderError as exc:
            problem = f"file: {exc}"
    if problem:
        if streaming:
            return _finish(visit, Response(_ndjson({"error": problem}), 400, media_type=NDJSON))
        return _render(visit, "import.html", 400, error=problem, result=None)
    holds = SuppressionStore(visit.redis)
    by, timezone = _owner(visit), visit.settings.default_timezone

    def apply(progress: Callable[[int, int], None] | None = None) -> ImportReport:
        report = import_holds(holds, rows, by=by, timezone=timezone, force_by=True, progress=progress)
        log.info("operator page: hold import by %s: %s", by, report.summary())
        return report

    if not streaming:
        return _render(visit, "import.html", result=_report_json(apply()))

    # The import runs in its own thread to its end, even if the browser goes away meanwhile:
    # the stream only reports on it.
    updates: queue.Queue[tuple[int, int] | ImportReport | Exception] = queue.Queue()

    def work() -> None:
        try:
            updates.put(apply(lambda done, total: updates.put((done, total))))
        except Exception as exc:
            log.exception("operator page: hold import by %s stopped", by)
            updates.put(exc)

    threading.Thread(target=work, name="operator-import", daemon=False).start()

    def stream() -> Iterator[bytes]:
        yield _ndjson({"progress": {"done": 0, "total": len(rows)}})
        done = 0
        while True:
            item = updates.get()
            if isinstance(item, ImportReport):
                yield _ndjson({"result": _report_json(item)})
                return
            if isinstance(item, Exception):
                message = f"the import stopped after {done} of {len(rows)} lines ({type(item).__name__}); "
                yield _ndjson({"error": message + "the lines before were applied: upload the file again"})
                return
            done = item[0]
            yield _ndjson({"progress": {"done": item[0], "total": item[1]}})

    return _finish(visit, StreamingResponse(stream(), media_type=NDJSON))


# -- static files -----------------------------------------------------------------------


@router.get("/static/{name}")
def static(name: str) -> Response:
    """The page's stylesheet and script (shipped in the package; nothing from elsewhere)."""
    media = _STATIC.get(name)
    if media is None:
        return Response("not found", 404, media_type="text/plain")
    body = (resources.files("herald.api.operator") / "static" / name).read_bytes()
    headers = {**HEADERS, "Cache-Control": "no-cache"}
    return Response(body, media_type=media, headers=headers)
