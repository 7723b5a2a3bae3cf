"""An account's page, ``/operator/account``: its holds, history and hold audit trail, and the
forms that add a hold and lift one.

Every change is recorded with the signed-in operator (its key's owner) as "who". A form with a
mistake answers the same page, 400, with the message next to its field and nothing stored.
"""

from __future__ import annotations

import logging
import re
from typing import Annotated, Any

from fastapi import Form
from fastapi.responses import HTMLResponse, Response

from herald.api.operator.page import DONE, SignedIn, SignedInPost, Visit, page_router, redirect, render
from herald.api.operator.summary import summary
from herald.api.operator.views import account_view
from herald.holds.holdcsv import HoldInputError, build_hold, parse_categories
from herald.holds.suppression import CATEGORIES, SuppressionStore
from herald.models import ID_PATTERN, MAX_ID

log = logging.getLogger("herald.operator")

router = page_router()

_ACCOUNT = re.compile(ID_PATTERN)


def _account_error(visit: Visit, account: str) -> str:
    if not account:
        return visit._("account_id: give an account id")
    if len(account) > MAX_ID or not _ACCOUNT.match(account):
        return visit._("account_id: %(account)s is not an account id (letters, digits and ._:@-)") % {
            "account": repr(account[:40])
        }
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
    return render(
        visit,
        "account.html",
        status,
        view=view,
        notice=notice,
        errors=errors or {},
        form=entered,
        categories=CATEGORIES,
        error=visit._("Nothing was changed: see the form below.") if errors else "",
    )


@router.get("/account", response_class=HTMLResponse)
def account(visit: SignedIn, account: str = "", done: str = "") -> Response:
    """An account's holds, recent history and hold audit trail, with forms to add and lift holds."""
    account = account.strip()
    if problem := _account_error(visit, account):
        figures = summary(visit.settings, visit.redis, visit.speaker)
        return render(visit, "home.html", 400, error=problem, account=account, summary=figures)
    return _account_page(visit, account, notice=visit._(DONE[done]) if done in DONE else "")


@router.post("/account/hold")
def add_hold(
    visit: SignedInPost,
    account: Annotated[str, Form()] = "",
    reason: Annotated[str, Form()] = "",
    until: Annotated[str, Form()] = "",
    agreement: Annotated[str, Form()] = "",
    categories: Annotated[list[str] | None, Form()] = None,
) -> Response:
    """Hold the account (who: the signed-in operator)."""
    account = account.strip()
    if problem := _account_error(visit, account):
        return render(visit, "refused.html", 400, message=problem)
    form = {"reason": reason, "until": until, "agreement": agreement, "categories": categories or []}
    try:
        if not categories:
            raise HoldInputError("categories", visit._("categories: choose at least one category to hold"))
        hold = build_hold(
            account,
            reason,
            until or None,
            agreement or None,
            parse_categories(categories),
            visit.owner,
            timezone=visit.settings.default_timezone,
        )
    except HoldInputError as exc:
        return _account_page(
            visit, account, 400, errors={exc.field: visit.tell(exc.template, exc.params)}, form=form
        )
    change = SuppressionStore(visit.redis).add(hold)
    log.info("operator page: %s %s on %s by %s", change.action, hold.id, account, hold.by)
    return redirect(visit, "/account", account=account, done="added")


@router.post("/account/lift")
def lift_hold(
    visit: SignedInPost,
    account: Annotated[str, Form()] = "",
    hold: Annotated[str, Form()] = "",
    reason: Annotated[str, Form()] = "",
) -> Response:
    """Lift one hold of the account; its other holds stay."""
    account = account.strip()
    if problem := _account_error(visit, account):
        return render(visit, "refused.html", 400, message=problem)
    if not reason.strip():
        errors = {f"lift:{hold}": visit._("reason: say why the hold is lifted")}
        return _account_page(visit, account, 400, errors=errors)
    change = SuppressionStore(visit.redis).remove(account, by=visit.owner, reason=reason.strip(), hold=hold)
    if not change.lifted:
        return _account_page(
            visit,
            account,
            409,
            errors={
                "hold": visit._("hold: %(account)s has no hold %(hold)s (already lifted?)")
                % {"account": account, "hold": repr(hold)}
            },
        )
    log.info("operator page: lifted %s on %s by %s", hold, account, visit.owner)
    return redirect(visit, "/account", account=account, done="lifted")
