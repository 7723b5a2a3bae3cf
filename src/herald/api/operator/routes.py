"""The operator page's routes, under ``/operator``: server-rendered HTML and plain forms.

Signed out, every page shows the sign-in form (an API key with the ``operator`` scope). Every
POST needs the session's CSRF token; a missing or wrong one is refused with 403 and changes
nothing. Whatever an operator changes is recorded with the key's owner as "who".

This module only mounts the page's areas, one module each, at ``/operator`` and out of the API
schema: :mod:`~herald.api.operator.home` (sign-in, sign-out, home),
:mod:`~herald.api.operator.account` (an account's holds), :mod:`~herald.api.operator.indoubt`
(in-doubt deliveries), :mod:`~herald.api.operator.deadletters` (dead letters),
:mod:`~herald.api.operator.holdimport` (hold CSV import) and
:mod:`~herald.api.operator.static` (stylesheet and script). What they share, the visit and the
gates that admit it, lives in :mod:`~herald.api.operator.page`.
"""

from __future__ import annotations

from fastapi import APIRouter

from herald.api.operator import account, deadletters, holdimport, home, indoubt, static

router = APIRouter()
for _area in (home, account, indoubt, deadletters, holdimport, static):
    router.include_router(_area.router, prefix="/operator", include_in_schema=False)
